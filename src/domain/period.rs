//! `Period`: the month (`YYYY-MM`) or ISO 8601 week (`YYYY-Www`) a sales target is for.

use chrono::{NaiveDate, Weekday};
use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};

/// A month `2026-11` or an ISO week `2026-W47`, stored as sent.
///
/// A week written `YYYY-WW` could not be told apart from a month, so weeks carry a `W`.
/// `W53` is valid only in ISO years that have 53 weeks (2020 does, 2021 does not).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Period(String);

impl Period {
    pub const RULE: &'static str =
        "must be a month YYYY-MM (01-12) or an ISO week YYYY-Www (W01-W53)";
    pub const NO_WEEK_53: &'static str = "week 53 does not exist in that ISO year";

    pub fn parse(value: &str) -> Result<Self, &'static str> {
        let bytes = value.as_bytes();
        let digits = |range: std::ops::Range<usize>| -> Option<u32> {
            let part = bytes.get(range)?;
            part.iter()
                .all(u8::is_ascii_digit)
                .then(|| part.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
        };
        let year = digits(0..4).filter(|_| bytes.get(4) == Some(&b'-'));
        match (year, bytes.len()) {
            (Some(_), 7) => match digits(5..7) {
                Some(1..=12) => Ok(Self(value.to_owned())),
                _ => Err(Self::RULE),
            },
            (Some(year), 8) if bytes[5] == b'W' => match digits(6..8) {
                Some(1..=52) => Ok(Self(value.to_owned())),
                Some(53) => {
                    let year = i32::try_from(year).map_err(|_| Self::RULE)?;
                    NaiveDate::from_isoywd_opt(year, 53, Weekday::Mon)
                        .map(|_| Self(value.to_owned()))
                        .ok_or(Self::NO_WEEK_53)
                }
                _ => Err(Self::RULE),
            },
            _ => Err(Self::RULE),
        }
    }

    pub(crate) fn from_stored(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl utoipa::PartialSchema for Period {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(
                "^[0-9]{4}-(0[1-9]|1[0-2]|W(0[1-9]|[1-4][0-9]|5[0-3]))$",
            ))
            .description(Some(Self::RULE))
            .examples([serde_json::json!("2026-11"), serde_json::json!("2026-W47")])
            .into()
    }
}

impl utoipa::ToSchema for Period {}

#[cfg(test)]
mod tests {
    use super::Period;

    #[test]
    fn accepts_months_and_existing_iso_weeks() {
        for ok in [
            "2024-01", "2024-12", "2024-W01", "2024-W52", "2020-W53", "2026-W53", "0001-01",
        ] {
            assert!(Period::parse(ok).is_ok(), "{ok} should be valid");
        }
    }

    #[test]
    fn rejects_malformed_periods_and_missing_week_53() {
        for (bad, why) in [
            ("2024-13", Period::RULE),
            ("2024-00", Period::RULE),
            ("2024-1", Period::RULE),
            ("2024-W00", Period::RULE),
            ("2024-W54", Period::RULE),
            ("2024-w01", Period::RULE),
            ("2024-01 ", Period::RULE),
            ("24-01", Period::RULE),
            ("2024/01", Period::RULE),
            ("2024-01-01", Period::RULE),
            ("２０２４-01", Period::RULE),
            ("", Period::RULE),
            ("2021-W53", Period::NO_WEEK_53),
            ("2025-W53", Period::NO_WEEK_53),
        ] {
            assert_eq!(Period::parse(bad), Err(why), "{bad:?}");
        }
    }
}
