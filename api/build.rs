//! Compiles the public API's protos with protox (no system `protoc`), and derives the REST
//! API's JSON form from the same descriptors: every message of `localplus.ledger.v1` gets serde
//! with these rules (the OpenAPI document, built from the same descriptors at run time, states
//! them):
//! - field names as in the proto (snake_case); a missing field is its default; an unknown field
//!   is an error;
//! - `U128` and 64-bit integers are decimal strings (JSON numbers lose precision past 2^53),
//!   and a 64-bit integer is also taken as a number;
//! - `bytes` are standard base64;
//! - enums are their value names (`"CUSTOMER_WALLET"`);
//! - a oneof is an object with exactly one key, the chosen field's name.
//!
//! The encoded descriptor set is written to `OUT_DIR` for gRPC reflection and OpenAPI.

use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::DescriptorProto;

const PACKAGE: &str = "localplus.ledger.v1";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos =
        ["proto/localplus/ledger/v1/ledger.proto", "proto/localplus/ledger/v1/admin.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("ledger_descriptor.bin"), descriptors.encode_to_vec())?;

    let mut config = tonic_prost_build::configure().build_client(true).build_server(true);
    for file in &descriptors.file {
        // The REST API mirrors `Ledger`; `Admin` stays gRPC only.
        if file.name() != "localplus/ledger/v1/ledger.proto" {
            continue;
        }
        for message in &file.message_type {
            config = json_attributes(config, &format!(".{PACKAGE}"), message)?;
        }
    }
    config.compile_fds(descriptors)?;
    Ok(())
}

type Builder = tonic_prost_build::Builder;

fn json_attributes(
    mut config: Builder,
    scope: &str,
    message: &DescriptorProto,
) -> Result<Builder, String> {
    let name = format!("{scope}.{}", message.name());
    if name == format!(".{PACKAGE}.U128") {
        return Ok(config.type_attribute(
            &name,
            "#[derive(serde::Serialize, serde::Deserialize)] \
             #[serde(try_from = \"crate::json::Number\", into = \"crate::json::Number\")]",
        ));
    }
    // A message's attributes reach its oneofs too (prost matches by prefix), so they must suit
    // an enum as well: `default` goes on each field instead.
    config = config.type_attribute(
        &name,
        "#[derive(serde::Serialize, serde::Deserialize)] \
         #[serde(deny_unknown_fields, rename_all = \"snake_case\")]",
    );
    if !message.nested_type.is_empty() {
        return Err(format!("{name}: nested messages have no JSON form yet"));
    }
    for field in &message.field {
        let repeated = field.label() == Label::Repeated;
        let with = match field.r#type() {
            Type::Fixed64 | Type::Uint64 | Type::Int64 | Type::Sfixed64 | Type::Sint64 => {
                Some("crate::json::u64_text".to_owned())
            }
            Type::Bytes => Some("crate::json::base64".to_owned()),
            Type::Enum => {
                let enum_name = field.type_name().rsplit('.').next().unwrap_or_default();
                Some(format!("crate::json::{}", snake(enum_name)))
            }
            _ => None,
        };
        if field.oneof_index.is_none() {
            // An absent message field is left out of the JSON (not `null`).
            let attribute = if field.r#type() == Type::Message && !repeated {
                "#[serde(default, skip_serializing_if = \"Option::is_none\")]"
            } else {
                "#[serde(default)]"
            };
            config = config.field_attribute(format!("{name}.{}", field.name()), attribute);
        }
        if let Some(with) = with {
            if repeated {
                return Err(format!(
                    "{name}.{}: repeated fields of this type have no JSON form",
                    field.name()
                ));
            }
            if field.oneof_index.is_some() {
                return Err(format!(
                    "{name}.{}: oneof members of this type have no JSON form",
                    field.name()
                ));
            }
            config = config.field_attribute(
                format!("{name}.{}", field.name()),
                format!("#[serde(with = \"{with}\")]"),
            );
        }
    }
    Ok(config)
}

fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}
