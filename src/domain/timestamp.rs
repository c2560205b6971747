//! `Timestamp`: a moment in UTC as every record carries it (`create_time`, `update_time`).

use std::sync::atomic::{AtomicI64, Ordering};

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

/// The last moment `Timestamp::now` gave out, in microseconds since the Unix epoch.
static LAST_ISSUED: AtomicI64 = AtomicI64::new(i64::MIN);

impl Timestamp {
    /// The current time, truncated to what both databases store, so that a value returned
    /// from a write equals the value a later read returns.
    ///
    /// Strictly increasing within the process: each call gives a later microsecond than the
    /// one before, even when two calls fall in one tick of the clock or the clock steps back.
    /// Incremental sync depends on it (docs/sync.md): two writes never share an
    /// `update_time`, and a later write never gets an earlier one.
    pub fn now() -> Self {
        let wall = Utc::now().timestamp_micros();
        let mut last = LAST_ISSUED.load(Ordering::Relaxed);
        loop {
            let next = wall.max(last.saturating_add(1));
            match LAST_ISSUED.compare_exchange_weak(
                last,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Self::from_micros(next).unwrap_or(Self(Utc::now().trunc_subsecs(6)))
                }
                Err(seen) => last = seen,
            }
        }
    }

    /// The moment `micros` microseconds after the Unix epoch, if it is one chrono can hold.
    pub fn from_micros(micros: i64) -> Option<Self> {
        DateTime::from_timestamp_micros(micros).map(Self)
    }

    /// Microseconds since the Unix epoch (the position of a sync cursor).
    pub fn micros(self) -> i64 {
        self.0.timestamp_micros()
    }

    /// `self`, or one microsecond after `earlier` if `self` is not later than it: the
    /// `update_time` of a row changed at `self` whose last change was at `earlier`, so that a
    /// row's `update_time` only ever moves forward.
    pub fn after(self, earlier: Self) -> Self {
        let next = Self(earlier.0 + chrono::Duration::microseconds(1));
        self.max(next)
    }

    /// This moment minus `duration` (the horizon of a sync page).
    pub fn minus(self, duration: std::time::Duration) -> Self {
        Self(self.0 - chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::zero()))
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

    #[test]
    fn now_only_moves_forward_even_within_one_tick() {
        let mut last = Timestamp::now();
        for _ in 0..10_000 {
            let next = Timestamp::now();
            assert!(next > last, "{next:?} after {last:?}");
            last = next;
        }
        let drift = last.micros() - Utc::now().timestamp_micros();
        assert!(drift < 1_000_000, "now() ran {drift} µs ahead of the clock");
    }

    #[test]
    fn after_is_later_than_the_earlier_moment() {
        let t = Timestamp::now();
        assert_eq!(t.after(t).micros(), t.micros() + 1);
        assert_eq!(t.after(t.minus(std::time::Duration::from_secs(1))), t);
        assert_eq!(Timestamp::from_micros(t.micros()), Some(t));
    }
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
