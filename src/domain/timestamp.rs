//! `Timestamp`: a moment in UTC as every record carries it (`create_time`, `update_time`).

use chrono::{DateTime, Datelike, SubsecRound, Timelike, Utc};
use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{KnownFormat, RefOr, Schema};

/// A moment in UTC, kept to the microsecond (what MySQL's `DATETIME(6)` holds), and written
/// as RFC 3339 with `Z`: `2026-11-21T10:30:00.123456Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(DateTime<Utc>);

/// The JSON form, `%Y-%m-%dT%H:%M:%S%.6fZ`.
const RFC3339_MICROS: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

impl Timestamp {
    /// The current time, truncated to what both databases store, so that a value returned
    /// from a write equals the value a later read returns.
    pub fn now() -> Self {
        Self(Utc::now().trunc_subsecs(6))
    }

    pub fn from_naive_utc(value: chrono::NaiveDateTime) -> Self {
        Self(value.and_utc())
    }

    pub fn naive_utc(self) -> chrono::NaiveDateTime {
        self.0.naive_utc()
    }

    /// This moment plus `duration` (token expiry).
    pub fn plus(self, duration: std::time::Duration) -> Self {
        Self(self.0 + chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX))
    }

    pub const RULE: &'static str =
        "must be an RFC 3339 time with a zone, such as 2026-11-21T10:30:00Z";

    /// A time a client sent (a query's `since`), in any zone, kept to the microsecond.
    pub fn parse_rfc3339(value: &str) -> Result<Self, &'static str> {
        DateTime::parse_from_rfc3339(value)
            .map(|t| Self(t.with_timezone(&Utc).trunc_subsecs(6)))
            .map_err(|_| Self::RULE)
    }

    /// Seconds since the Unix epoch (JWT `iat`/`exp`).
    pub fn unix(self) -> i64 {
        self.0.timestamp()
    }

    /// Seconds from `self` to `later`, to the nearest second; 0 when `later` is not after.
    pub fn seconds_until(self, later: Self) -> u64 {
        let millis = (later.0 - self.0).num_milliseconds();
        u64::try_from(millis.saturating_add(500) / 1000).unwrap_or(0)
    }

    /// The JSON form written digit by digit: every record in a response carries two of these,
    /// and interpreting a format string per value was ~7% of a 100-row batch's CPU. `None`
    /// outside years 0–9999 and on a leap second, which `chrono` then formats.
    fn rfc3339_micros(self) -> Option<[u8; 27]> {
        let (date, time) = (self.0.date_naive(), self.0.time());
        let year = u32::try_from(date.year()).ok().filter(|y| *y <= 9999)?;
        let micros = Some(time.nanosecond() / 1000).filter(|m| *m < 1_000_000)?;
        let mut out = *b"0000-00-00T00:00:00.000000Z";
        for (range, value) in [
            (0..4, year),
            (5..7, date.month()),
            (8..10, date.day()),
            (11..13, time.hour()),
            (14..16, time.minute()),
            (17..19, time.second()),
            (20..26, micros),
        ] {
            let mut value = value;
            for digit in out[range].iter_mut().rev() {
                *digit = b'0' + (value % 10) as u8;
                value /= 10;
            }
        }
        Some(out)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.rfc3339_micros() {
            Some(ascii) => serializer.serialize_str(
                std::str::from_utf8(&ascii).map_err(<S::Error as serde::ser::Error>::custom)?,
            ),
            None => serializer.collect_str(&self.0.format(RFC3339_MICROS)),
        }
    }
}

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("UTC, RFC 3339 with microseconds and Z"))
            .examples([serde_json::json!("2026-11-21T10:30:00.123456Z")])
            .into()
    }
}

impl utoipa::ToSchema for Timestamp {}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, nanos: u32) -> Timestamp {
        Timestamp::from_naive_utc(
            NaiveDate::from_ymd_opt(y, mo, d)
                .unwrap()
                .and_hms_nano_opt(h, mi, s, nanos)
                .unwrap(),
        )
    }

    #[test]
    fn json_form_matches_chrono_formatting() {
        let cases = [
            at(2026, 11, 21, 10, 30, 0, 123_456_000),
            at(2026, 1, 2, 3, 4, 5, 0),
            at(1999, 12, 31, 23, 59, 59, 999_999_000),
            at(2024, 2, 29, 0, 0, 0, 1_000),
            at(1, 1, 1, 0, 0, 0, 0),
            at(9999, 12, 31, 23, 59, 59, 500_000_000),
            at(10_000, 1, 1, 0, 0, 0, 0),
            at(2016, 12, 31, 23, 59, 59, 1_500_000_000), // a leap second
        ];
        for t in cases {
            let expected = format!("\"{}\"", t.0.format(RFC3339_MICROS));
            assert_eq!(serde_json::to_string(&t).unwrap(), expected);
        }
        let mut t = at(2026, 3, 1, 0, 0, 0, 0);
        for _ in 0..2_000 {
            let expected = format!("\"{}\"", t.0.format(RFC3339_MICROS));
            assert_eq!(serde_json::to_string(&t).unwrap(), expected);
            t = t.plus(std::time::Duration::from_micros(86_399_999_937));
        }
    }
}
