//! Unsigned 128-bit integers as PostgreSQL `NUMERIC`, in the binary wire format: ledger ids
//! and amounts are `u128`, wider than any PostgreSQL integer type.
//!
//! The format: `ndigits: i16, weight: i16, sign: u16, dscale: u16`, then `ndigits` base-10000
//! digits, most significant first; the value is the sum of `digit[i] * 10000^(weight - i)`.

use std::error::Error;

use bytes::{BufMut, BytesMut};
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};

const NBASE: u128 = 10_000;
const SIGN_POSITIVE: u16 = 0x0000;
const SIGN_NEGATIVE: u16 = 0x4000;

/// A `u128` carried as `NUMERIC`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Numeric(pub u128);

impl ToSql for Numeric {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        // At most 10 base-10000 digits (u128::MAX has 39 decimal digits).
        let mut digits = [0u16; 10];
        let mut count = 0;
        let mut rest = self.0;
        while rest > 0 {
            digits[count] = u16::try_from(rest % NBASE).expect("below 10000");
            rest /= NBASE;
            count += 1;
        }
        // Trailing zero digits need not be sent: the weight places the others.
        let zeros = digits[..count].iter().take_while(|d| **d == 0).count();
        let sent = &digits[zeros..count];
        let weight = i16::try_from(count).expect("at most 10") - 1;
        out.put_i16(i16::try_from(sent.len()).expect("at most 10"));
        out.put_i16(if count == 0 { 0 } else { weight });
        out.put_u16(SIGN_POSITIVE);
        out.put_u16(0);
        for digit in sent.iter().rev() {
            out.put_i16(i16::try_from(*digit).expect("below 10000"));
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Numeric {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        let word = |i: usize| -> Result<u16, Box<dyn Error + Sync + Send>> {
            let bytes = raw.get(i * 2..i * 2 + 2).ok_or("numeric: truncated")?;
            Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
        };
        let ndigits = usize::from(word(0)?);
        let weight = i32::from(i16::from_be_bytes(word(1)?.to_be_bytes()));
        let sign = word(2)?;
        if raw.len() != 8 + ndigits * 2 {
            return Err("numeric: length does not match its digit count".into());
        }
        if sign == SIGN_NEGATIVE && ndigits > 0 {
            return Err("numeric: negative where an unsigned value is expected".into());
        }
        if sign != SIGN_POSITIVE && sign != SIGN_NEGATIVE {
            return Err("numeric: NaN or infinity where an integer is expected".into());
        }
        let mut value: u128 = 0;
        for i in 0..ndigits {
            let digit = u128::from(word(4 + i)?);
            if digit >= NBASE {
                return Err("numeric: digit out of range".into());
            }
            // Digits past the decimal point must be zero.
            let position = weight - i32::try_from(i).expect("small");
            if position < 0 {
                if digit != 0 {
                    return Err("numeric: a fraction where an integer is expected".into());
                }
                continue;
            }
            value = value
                .checked_mul(NBASE)
                .and_then(|v| v.checked_add(digit))
                .ok_or("numeric: wider than 128 bits")?;
        }
        // Trailing zero digits that were not sent.
        let sent_to = weight - i32::try_from(ndigits).expect("small") + 1;
        for _ in 0..sent_to.max(0) {
            value = value.checked_mul(NBASE).ok_or("numeric: wider than 128 bits")?;
        }
        Ok(Self(value))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(value: u128) -> u128 {
        let mut out = BytesMut::new();
        Numeric(value).to_sql(&Type::NUMERIC, &mut out).expect("encodes");
        Numeric::from_sql(&Type::NUMERIC, &out).expect("decodes").0
    }

    #[test]
    fn values_survive_the_wire_format() {
        for value in [0, 1, 9_999, 10_000, 10_001, 100_000_000, 12_345_678_901_234, u128::MAX] {
            assert_eq!(round_trip(value), value);
        }
        let mut x: u128 = 1;
        while let Some(next) = x.checked_mul(7) {
            assert_eq!(round_trip(x), x);
            assert_eq!(round_trip(x - 1), x - 1);
            x = next;
        }
    }

    #[test]
    fn fractions_negatives_and_overflow_are_refused() {
        // 1.5: ndigits 2, weight 0, dscale 1, digits [1, 5000].
        let raw = [0, 2, 0, 0, 0, 0, 0, 1, 0, 1, 0x13, 0x88];
        assert!(Numeric::from_sql(&Type::NUMERIC, &raw).is_err());
        // -1.
        let raw = [0, 1, 0, 0, 0x40, 0, 0, 0, 0, 1];
        assert!(Numeric::from_sql(&Type::NUMERIC, &raw).is_err());
        // 1 * 10000^10: 41 decimal digits.
        let raw = [0, 1, 0, 10, 0, 0, 0, 0, 0, 1];
        assert!(Numeric::from_sql(&Type::NUMERIC, &raw).is_err());
        // Truncated.
        assert!(Numeric::from_sql(&Type::NUMERIC, &[0, 1, 0, 0]).is_err());
    }
}
