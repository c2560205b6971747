//! How times are stored in SQLite: sqlx writes a `NaiveDateTime` as text (`%F %T%.f`). Upserts
//! format the time once per statement and read `create_time` back by position, because
//! interpreting `chrono`'s format string per value was a visible part of a batch's CPU.

use crate::domain::Timestamp;
use crate::store::StoreError;

/// How sqlx writes a `NaiveDateTime` into SQLite, and so how every stored time reads.
const STORED_TIME: &str = "%F %T%.f";

/// `at` as the text sqlx stores for a `NaiveDateTime` on SQLite.
pub(super) fn stored_time(at: Timestamp) -> String {
    at.naive_utc().format(STORED_TIME).to_string()
}

/// A stored time read back, by position.
pub(super) fn parse_stored_time(text: &str) -> Result<Timestamp, StoreError> {
    let b = text.as_bytes();
    let number = |digits: &[u8]| -> Option<u32> {
        digits.iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let parsed = (|| {
        let shape = b.len() >= 19
            && [(4, b'-'), (7, b'-'), (10, b' '), (13, b':'), (16, b':')]
                .iter()
                .all(|&(at, c)| b[at] == c);
        if !shape {
            return None;
        }
        let nanos = match &b[19..] {
            [] => 0,
            [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
                number(digits)? * 10u32.pow(9 - digits.len() as u32)
            }
            _ => return None,
        };
        let year = i32::try_from(number(&b[0..4])?).ok()?;
        let date = chrono::NaiveDate::from_ymd_opt(year, number(&b[5..7])?, number(&b[8..10])?)?;
        let time = chrono::NaiveTime::from_hms_nano_opt(
            number(&b[11..13])?,
            number(&b[14..16])?,
            number(&b[17..19])?,
            nanos,
        )?;
        Some(Timestamp::from_naive_utc(date.and_time(time)))
    })();
    parsed.ok_or_else(|| StoreError::codec(format!("unexpected stored time {text:?}")))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn stored_times_read_back_as_written() {
        let mut at = Timestamp::now();
        for step_micros in [0, 1, 999, 1_000, 250_000, 1_000_000, 86_399_999_937] {
            at = at.plus(Duration::from_micros(step_micros));
            let text = stored_time(at);
            assert_eq!(parse_stored_time(&text).unwrap(), at, "{text}");
            let by_chrono = chrono::NaiveDateTime::parse_from_str(&text, STORED_TIME).unwrap();
            assert_eq!(Timestamp::from_naive_utc(by_chrono), at, "{text}");
        }
        for text in [
            "2026-11-21 10:30:00",
            "2026-11-21 10:30:00.5",
            "2026-11-21 10:30:00.123456789",
        ] {
            let by_chrono = chrono::NaiveDateTime::parse_from_str(text, STORED_TIME).unwrap();
            assert_eq!(
                parse_stored_time(text).unwrap(),
                Timestamp::from_naive_utc(by_chrono)
            );
        }
        for bad in [
            "",
            "2026-11-21",
            "2026-11-21T10:30:00",
            "2026-13-01 00:00:00",
            "2026-11-21 10:30:00.",
            "2026-11-21 10:30:00.1234567890",
            "2026-11-21 10:30:0x",
        ] {
            assert!(parse_stored_time(bad).is_err(), "{bad}");
        }
    }
}
