//! The OpenAPI 3.1 document of the REST API, served at `/openapi.json`. Paths come from
//! `rest::ROUTES` (the table the router is built from); schemas come from the protobuf
//! descriptors the JSON types are generated from, by the same rules `build.rs` gives serde. So
//! the document cannot drift from what the server does.

use std::sync::OnceLock;

use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorSet};
use serde_json::{json, Map, Value};

use crate::auth::Scope;
use crate::rest::{self, Idempotency, ROUTES};

const LEDGER_PROTO: &str = "localplus/ledger/v1/ledger.proto";

/// The document, built once.
#[must_use]
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

fn build() -> Value {
    let descriptors = FileDescriptorSet::decode(crate::proto::DESCRIPTOR_SET)
        .expect("the descriptor set compiled into this binary decodes");
    let file = descriptors
        .file
        .iter()
        .find(|f| f.name() == LEDGER_PROTO)
        .expect("ledger.proto is in the descriptor set");
    let mut schemas = Map::new();
    for message in &file.message_type {
        schemas.insert(message.name().to_owned(), message_schema(message));
    }
    for enumeration in &file.enum_type {
        schemas.insert(enumeration.name().to_owned(), enum_schema(enumeration));
    }
    schemas.insert(
        "U128".into(),
        json!({"type": "string", "pattern": "^[0-9]{1,39}$",
               "description": "An unsigned 128-bit integer in decimal. A JSON number up to 2^64-1 is also taken."}),
    );
    schemas.insert("Problem".into(), problem_schema());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Local-Plus Ledger",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Gift cards and loyalty points: accounts, transfers, holds, lots with expiry. \
                Every write is idempotent by its ids; per-event results are in successful replies. \
                The same operations are served over gRPC (localplus.ledger.v1.Ledger)."
        },
        "paths": paths(),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "A token from the node's tokens file; scopes ledger:read, ledger:write, admin."}
            }
        }
    })
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn enum_schema(enumeration: &EnumDescriptorProto) -> Value {
    let names: Vec<&str> = enumeration.value.iter().map(|v| v.name()).collect();
    json!({"type": "string", "enum": names})
}

fn field_schema(field: &prost_types::FieldDescriptorProto) -> Value {
    let last = |name: &str| name.rsplit('.').next().unwrap_or_default().to_owned();
    let scalar = match field.r#type() {
        Type::Message | Type::Enum => reference(&last(field.type_name())),
        Type::Fixed64 | Type::Uint64 | Type::Int64 | Type::Sfixed64 | Type::Sint64 => json!({
            "type": "string", "pattern": "^[0-9]{1,20}$",
            "description": "A 64-bit integer in decimal (a JSON number is also taken)."
        }),
        Type::Fixed32 | Type::Uint32 => {
            json!({"type": "integer", "minimum": 0, "maximum": u32::MAX})
        }
        Type::Int32 | Type::Sfixed32 | Type::Sint32 => {
            json!({"type": "integer", "minimum": i32::MIN, "maximum": i32::MAX})
        }
        Type::Bool => json!({"type": "boolean"}),
        Type::String => json!({"type": "string"}),
        Type::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
        Type::Double | Type::Float => json!({"type": "number"}),
        Type::Group => json!({}),
    };
    if field.label() == Label::Repeated {
        json!({"type": "array", "items": scalar})
    } else {
        scalar
    }
}

fn message_schema(message: &DescriptorProto) -> Value {
    let mut properties = Map::new();
    let mut oneofs: Vec<Map<String, Value>> = vec![Map::new(); message.oneof_decl.len()];
    for field in &message.field {
        match field.oneof_index {
            Some(i) => {
                oneofs[usize::try_from(i).unwrap_or(0)]
                    .insert(field.name().into(), field_schema(field));
            }
            None => {
                properties.insert(field.name().into(), field_schema(field));
            }
        }
    }
    for (oneof, members) in message.oneof_decl.iter().zip(oneofs) {
        properties.insert(
            oneof.name().into(),
            json!({"type": "object", "properties": members, "additionalProperties": false,
                   "minProperties": 1, "maxProperties": 1,
                   "description": "Exactly one of the properties."}),
        );
    }
    json!({"type": "object", "properties": properties, "additionalProperties": false,
           "description": "Every property is optional; a missing one is zero, empty or false."})
}

fn problem_schema() -> Value {
    json!({
        "type": "object",
        "required": ["type", "title", "status", "code", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "code": {"type": "string", "description": "Stable and machine-readable: invalid_request, malformed_json, \
                unsupported_media_type, payload_too_large, unauthenticated, forbidden, rate_limited, not_found, \
                no_such_route, account_not_found, transfer_not_found, conflict, overloaded, unavailable, \
                deadline_exceeded, idempotency_key_mismatch, invalid_idempotency_key, \
                idempotency_key_not_supported, internal; or a transfer's result code."},
            "detail": {"type": "string"},
            "leader": {"type": "string", "description": "The leader's address, when the node knows it."},
            "result": reference("TransferResult")
        }
    })
}

fn problem(description: &str) -> Value {
    json!({"description": description,
           "content": {"application/problem+json": {"schema": reference("Problem")}}})
}

/// The responses every API route may give besides its success.
fn error_responses(route: &rest::Route) -> Map<String, Value> {
    let mut responses = Map::new();
    responses
        .insert("400".into(), problem("The request is malformed; `detail` names what is wrong"));
    responses.insert("401".into(), problem("No valid token (missing, unknown or expired)"));
    responses.insert("403".into(), problem("The token lacks the scope"));
    responses.insert("429".into(), problem("The token is over its rate limit; see Retry-After"));
    responses.insert(
        "503".into(),
        problem("No leader yet, or the write queue is full; retry with the same ids"),
    );
    responses.insert(
        "504".into(),
        problem("The deadline passed; the outcome is unknown, retry with the same ids"),
    );
    responses.insert("500".into(), problem("A fault inside the node"));
    if route.request.is_some() {
        responses.insert("413".into(), problem("The body is too large"));
        responses.insert("415".into(), problem("The body is not JSON"));
    }
    if route.method == "GET" {
        responses.insert("404".into(), problem("No such account or transfer"));
    }
    if route.operation == "GetGiftCard" {
        responses.insert("404".into(), problem("No gift card with this code"));
    }
    if route.idempotency == Idempotency::Single {
        responses.insert("409".into(), problem("A retry with the same id but other fields"));
        responses.insert(
            "422".into(),
            problem(
                "The ledger refused the transfer (`code` is its result, `result` the details), \
                 or the Idempotency-Key disagrees with an explicit id",
            ),
        );
    }
    if route.idempotency == Idempotency::Batch {
        // Refusals are per event in the 200 reply; only the key itself can fail the request.
        responses
            .insert("422".into(), problem("The Idempotency-Key disagrees with an explicit id"));
    }
    responses
}

fn parameters(route: &rest::Route) -> Vec<Value> {
    let mut parameters = Vec::new();
    if route.path.contains("{id}") {
        parameters.push(json!({"name": "id", "in": "path", "required": true,
                               "schema": reference("U128")}));
    }
    if route.request.is_none() {
        for name in rest::query_parameters(route.path) {
            let schema = match *name {
                "descending" => json!({"type": "boolean"}),
                "timestamp_min" | "timestamp_max" => {
                    json!({"type": "string", "pattern": "^[0-9]{1,20}$"})
                }
                "limit" => json!({"type": "integer", "minimum": 1,
                                  "maximum": ledger_sm::constants::QUERY_LIMIT_MAX,
                                  "default": rest::LIMIT_DEFAULT}),
                _ => json!({"type": "integer", "minimum": 0, "maximum": u32::MAX}),
            };
            parameters
                .push(json!({"name": name, "in": "query", "required": false, "schema": schema}));
        }
    }
    if route.idempotency != Idempotency::No {
        parameters.push(json!({
            "name": "Idempotency-Key", "in": "header", "required": false,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            "description": "Supplies the transfer id: a UUID or decimal key is that number, any other key its hash; \
                event i > 0 of a batch gets the hash of the key and i. A retry with the same key answers `exists`."
        }));
    }
    parameters
}

fn paths() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let mut operation = Map::new();
        operation.insert("operationId".into(), route.operation.into());
        operation.insert("summary".into(), route.summary.into());
        let scope = match route.scope {
            Scope::Read => "ledger:read",
            Scope::Write => "ledger:write",
            Scope::Admin => "admin",
        };
        operation.insert("security".into(), json!([{"bearer": [scope]}]));
        let parameters = parameters(route);
        if !parameters.is_empty() {
            operation.insert("parameters".into(), parameters.into());
        }
        if let Some(request) = route.request {
            operation.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {"schema": reference(request)}}}),
            );
        }
        let mut responses = error_responses(route);
        responses.insert(
            "200".into(),
            json!({"description": "Done", "content": {"application/json": {"schema": reference(route.reply)}}}),
        );
        operation.insert("responses".into(), responses.into());
        let entry = paths.entry(route.path).or_insert_with(|| json!({}));
        entry[route.method.to_ascii_lowercase()] = operation.into();
    }
    let plain = |summary: &str, content: &str| {
        json!({"get": {"summary": summary, "security": [], "responses": {
            "200": {"description": "OK", "content": {content: {}}},
            "503": problem("Not ready")
        }}})
    };
    paths.insert("/healthz".into(), plain("The process is up", "text/plain"));
    paths.insert("/readyz".into(), plain("The node knows a leader and can serve", "text/plain"));
    paths.insert(
        "/metrics".into(),
        plain("Prometheus metrics (OpenMetrics text)", "application/openmetrics-text"),
    );
    paths.insert("/openapi.json".into(), plain("This document", "application/json"));
    paths.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in `value` names a schema of `document`.
    fn refs(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    found.push(target.clone());
                }
                map.values().for_each(|v| refs(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves_and_every_route_is_described() {
        let document = document();
        let mut found = Vec::new();
        refs(document, &mut found);
        assert!(!found.is_empty());
        for target in found {
            let name = target.strip_prefix("#/components/schemas/").unwrap();
            assert!(document["components"]["schemas"].get(name).is_some(), "{target}");
        }
        for route in ROUTES {
            let method = route.method.to_ascii_lowercase();
            assert!(
                document["paths"][route.path][&method].is_object(),
                "{} {}",
                route.method,
                route.path
            );
        }
        let transfer = &document["components"]["schemas"]["NewTransfer"]["properties"];
        assert_eq!(transfer["id"], reference("U128"));
        assert_eq!(transfer["code"], reference("TransferCode"));
        assert_eq!(transfer["user_data_64"]["type"], "string");
        let change = &document["components"]["schemas"]["AccountChange"]["properties"]["change"];
        assert_eq!(change["maxProperties"], 1);
        assert!(change["properties"]["freeze"].is_object());
    }
}
