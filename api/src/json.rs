//! The JSON form of the API's messages (the REST API), as `build.rs` attaches it to the
//! generated types: 128- and 64-bit integers as decimal strings, bytes as base64, enums by
//! name. These are the `#[serde(with = …)]` modules and `U128`'s conversions.

use serde::{Deserialize, Serialize};

use crate::proto::ledger as pb;

/// A JSON integer: a decimal string (any width), or a number (64 bits at most: JSON numbers
/// past 2^53 lose precision in most parsers, so replies always use strings).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Number {
    Text(String),
    Integer(u64),
}

impl Number {
    fn parse<T: std::str::FromStr + From<u64>>(self, what: &str) -> Result<T, String> {
        match self {
            Number::Integer(n) => Ok(T::from(n)),
            Number::Text(text) => {
                if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("{what}: expected a decimal string, got {text:?}"));
                }
                text.parse().map_err(|_| format!("{what}: {text} is out of range"))
            }
        }
    }
}

impl TryFrom<Number> for pb::U128 {
    type Error = String;

    fn try_from(number: Number) -> Result<Self, String> {
        let value: u128 = number.parse("a 128-bit unsigned integer")?;
        Ok(crate::convert::pb_u128(value).unwrap_or_default())
    }
}

impl From<pb::U128> for Number {
    fn from(value: pb::U128) -> Self {
        Number::Text(crate::convert::u128_of(Some(&value)).to_string())
    }
}

/// 64-bit unsigned integers: a decimal string out, a string or a number in.
pub mod u64_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Number;

    /// # Errors
    /// Never, but for the serializer's own.
    #[allow(clippy::trivially_copy_pass_by_ref)]
    pub fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    /// # Errors
    /// Not an integer, or out of range.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        Number::deserialize(deserializer)?
            .parse("a 64-bit unsigned integer")
            .map_err(serde::de::Error::custom)
    }
}

/// Bytes as standard base64 (with padding).
pub mod base64 {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    /// # Errors
    /// Never, but for the serializer's own.
    pub fn serialize<S: Serializer>(value: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(value))
    }

    /// # Errors
    /// Not a string of base64.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("base64: {e}")))
    }
}

macro_rules! enum_by_name {
    ($module:ident, $enum:ident) => {
        #[doc = concat!("`", stringify!($enum), "` by its value name.")]
        pub mod $module {
            use serde::{Deserialize, Deserializer, Serializer};

            use crate::proto::ledger::$enum;

            /// # Errors
            /// Never, but for the serializer's own.
            #[allow(clippy::trivially_copy_pass_by_ref)]
            pub fn serialize<S: Serializer>(value: &i32, serializer: S) -> Result<S::Ok, S::Error> {
                match $enum::try_from(*value) {
                    Ok(known) => serializer.serialize_str(known.as_str_name()),
                    Err(_) => serializer.serialize_i32(*value),
                }
            }

            /// # Errors
            /// Not one of the enum's names.
            pub fn deserialize<'de, D: Deserializer<'de>>(
                deserializer: D,
            ) -> Result<i32, D::Error> {
                let name = String::deserialize(deserializer)?;
                $enum::from_str_name(&name).map(|v| v as i32).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        concat!("unknown ", stringify!($enum), " {:?}"),
                        name
                    ))
                })
            }
        }
    };
}

enum_by_name!(account_kind, AccountKind);
enum_by_name!(transfer_code, TransferCode);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u128_is_a_decimal_string_both_ways() {
        let value = pb::NewTransfer {
            id: crate::convert::pb_u128(u128::MAX),
            user_data_64: u64::MAX,
            code: pb::TransferCode::Earn as i32,
            ..Default::default()
        };
        let text = serde_json::to_string(&value).unwrap();
        assert!(text.contains(&format!("\"id\":\"{}\"", u128::MAX)), "{text}");
        assert!(text.contains(&format!("\"user_data_64\":\"{}\"", u64::MAX)), "{text}");
        assert!(text.contains("\"code\":\"EARN\""), "{text}");
        let back: pb::NewTransfer = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn numbers_and_defaults_are_taken() {
        let t: pb::NewTransfer =
            serde_json::from_str(r#"{"id": 7, "amount": "12", "user_data_64": 3}"#).unwrap();
        assert_eq!(crate::convert::u128_of(t.id.as_ref()), 7);
        assert_eq!(crate::convert::u128_of(t.amount.as_ref()), 12);
        assert_eq!(t.user_data_64, 3);
        assert_eq!(t.asset, 0);
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        for (body, reason) in [
            (r#"{"id": "-1"}"#, "decimal string"),
            (r#"{"id": "1e3"}"#, "decimal string"),
            (r#"{"id": "340282366920938463463374607431768211456"}"#, "out of range"),
            (r#"{"asset": 4294967296}"#, "u32"),
            (r#"{"code": "NOPE"}"#, "unknown TransferCode"),
            (r#"{"idd": "1"}"#, "unknown field"),
            (r#"{"user_data_64": "18446744073709551616"}"#, "out of range"),
        ] {
            let error = serde_json::from_str::<pb::NewTransfer>(body).unwrap_err().to_string();
            assert!(error.contains(reason), "{body}: {error}");
        }
        let error = serde_json::from_str::<pb::NewAccount>(r#"{"metadata": "*"}"#).unwrap_err();
        assert!(error.to_string().contains("base64"), "{error}");
    }
}
