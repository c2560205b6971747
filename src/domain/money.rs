//! `Money`: an exact amount in cents, read from the text of a JSON number, never via a float.

use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{KnownFormat, RefOr, Schema};

/// A positive amount with at most two decimal places, up to 999,999,999,999.99, held as an
/// integer number of cents so that `19.99` is stored and returned as exactly `19.99`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Money {
    cents: i64,
}

impl Money {
    pub const MAX_CENTS: i64 = 99_999_999_999_999;
    pub const NOT_POSITIVE: &'static str = "must be greater than 0";
    pub const TOO_PRECISE: &'static str = "must have at most 2 decimal places";
    pub const TOO_LARGE: &'static str = "must be at most 999999999999.99";

    /// Parses the literal text of a JSON number (`19.99`, `2e3`, `-1`), exactly.
    ///
    /// The caller has already established that the text is a JSON number.
    pub fn parse_json_number(text: &str) -> Result<Self, &'static str> {
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
            Some(at) => (&unsigned[..at], &unsigned[at + 1..]),
            None => (unsigned, "0"),
        };
        let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        // An exponent past 64 bits saturates: with fewer than 2^63 digits (a body is at most a
        // few MiB), the value is then far out of range either way. It is never clamped to
        // something smaller, which would change the value: `1` and 100 zeros `e-400` is
        // 1e-300, not 1.
        let overflow = if exponent.starts_with('-') {
            i64::MIN
        } else {
            i64::MAX
        };
        let exponent = i128::from(exponent.parse::<i64>().unwrap_or(overflow));

        // All significant digits, and the power of ten that scales them to the value, in
        // 128 bits so that no exponent and digit count can overflow.
        let digits = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0');
        let trimmed = digits.trim_end_matches('0');
        let scale = exponent - frac_part.len() as i128 + (digits.len() - trimmed.len()) as i128;

        if trimmed.is_empty() {
            return Err(Self::NOT_POSITIVE); // zero, however it is written
        }
        if negative {
            return Err(Self::NOT_POSITIVE);
        }
        if scale < -2 {
            return Err(Self::TOO_PRECISE);
        }
        // value = trimmed × 10^scale, so cents = trimmed × 10^(scale + 2).
        let cents_digits = trimmed.len() as i128 + scale + 2;
        if cents_digits > 14 {
            return Err(Self::TOO_LARGE);
        }
        let mut cents: i64 = trimmed.parse().map_err(|_| Self::TOO_LARGE)?;
        for _ in 0..(scale + 2) {
            cents *= 10;
        }
        if cents > Self::MAX_CENTS {
            return Err(Self::TOO_LARGE);
        }
        Ok(Self { cents })
    }

    /// Wraps a value read back from storage, which was checked when it was written.
    pub(crate) fn from_cents(cents: i64) -> Self {
        Self { cents }
    }

    pub fn cents(self) -> i64 {
        self.cents
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:02}", self.cents / 100, self.cents % 100)
    }
}

/// Written as a JSON number. Every amount in range has at most 14 significant digits, so the
/// division below gives the double nearest the decimal, and serde_json's shortest round-trip
/// formatting prints exactly that decimal (`1999` cents → `19.99`).
impl Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.cents as f64 / 100.0)
    }
}

impl utoipa::PartialSchema for Money {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Number)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Double)))
            .exclusive_minimum(Some(0))
            .maximum(Some(999_999_999_999.99))
            .multiple_of(Some(0.01))
            .description(Some(
                "greater than 0, at most 2 decimal places, at most 999999999999.99; stored exactly",
            ))
            .examples([serde_json::json!(15000.5)])
            .into()
    }
}

impl utoipa::ToSchema for Money {}

#[cfg(test)]
mod tests {
    use super::Money;

    #[test]
    fn accepts_amounts_with_up_to_two_decimals_exactly() {
        for (text, cents) in [
            ("0.01", 1),
            ("19.99", 1999),
            ("19.990", 1999),
            ("100", 10_000),
            ("1e2", 10_000),
            ("1.5E1", 1500),
            ("12345e-2", 12345),
            ("999999999999.99", 99_999_999_999_999),
        ] {
            assert_eq!(
                Money::parse_json_number(text),
                Ok(Money::from_cents(cents)),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_zero_negative_too_precise_and_too_large_amounts() {
        for (text, why) in [
            ("0", Money::NOT_POSITIVE),
            ("0.00", Money::NOT_POSITIVE),
            ("-0.0", Money::NOT_POSITIVE),
            ("-5", Money::NOT_POSITIVE),
            ("1.234", Money::TOO_PRECISE),
            ("0.001", Money::TOO_PRECISE),
            ("1e-3", Money::TOO_PRECISE),
            ("1000000000000", Money::TOO_LARGE),
            ("999999999999.991", Money::TOO_PRECISE),
            ("1e13", Money::TOO_LARGE),
            ("1e999999999999", Money::TOO_LARGE),
            ("1e-999999999999", Money::TOO_PRECISE),
            ("1e-99999999999999999999999", Money::TOO_PRECISE),
            ("1e+99999999999999999999999", Money::TOO_LARGE),
            ("1e-400", Money::TOO_PRECISE),
            ("0.5e-30", Money::TOO_PRECISE),
            // Trailing zeros against a huge exponent: 1e-300 and 1e-298, not 1 and 100.
            (
                format!("1{}e-400", "0".repeat(100)).as_str(),
                Money::TOO_PRECISE,
            ),
            (
                format!("1{}e-400", "0".repeat(102)).as_str(),
                Money::TOO_PRECISE,
            ),
            // Leading fraction zeros against a huge exponent: 1e+300, not 1.
            (
                format!("0.{}1e+400", "0".repeat(99)).as_str(),
                Money::TOO_LARGE,
            ),
        ] {
            assert_eq!(Money::parse_json_number(text), Err(why), "{text}");
        }
    }

    #[test]
    fn serialises_as_the_decimal_it_holds() {
        for (cents, json) in [
            (1999, "19.99"),
            (1, "0.01"),
            (99_999_999_999_999, "999999999999.99"),
        ] {
            assert_eq!(
                serde_json::to_string(&Money::from_cents(cents)).unwrap(),
                json
            );
        }
    }
}
