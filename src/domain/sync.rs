//! Incremental sync: where a page of changed rows starts, and the opaque cursor that carries
//! it from one page to the next (docs/sync.md).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::Timestamp;

/// A place in the order of incremental sync, (`update_time`, `id`): a page holds the rows
/// after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SyncPosition {
    pub time: Timestamp,
    pub id: i64,
}

/// The version of the cursor's text, so that a later format can tell old cursors apart.
const CURSOR_PREFIX: &str = "s1.";

impl SyncPosition {
    pub const CURSOR_RULE: &'static str = "must be a next_cursor this API returned";

    /// Before every row updated at `since` or later (`updated_since`): ids start at 1.
    pub fn since(since: Timestamp) -> Self {
        Self { time: since, id: 0 }
    }

    /// Right after the row at (`time`, `id`).
    pub fn after(time: Timestamp, id: i64) -> Self {
        Self { time, id }
    }

    /// The opaque text a client sends back as `cursor`: base64url of `s1.<µs>.<id>`.
    pub fn to_cursor(self) -> String {
        let text = format!("{CURSOR_PREFIX}{}.{}", self.time.micros(), self.id);
        URL_SAFE_NO_PAD.encode(text)
    }

    /// Reads a `cursor` that `to_cursor` wrote.
    pub fn parse_cursor(cursor: &str) -> Result<Self, &'static str> {
        let parse = || -> Option<Self> {
            if cursor.len() > 64 {
                return None;
            }
            let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
            let text = std::str::from_utf8(&bytes).ok()?;
            let (micros, id) = text.strip_prefix(CURSOR_PREFIX)?.split_once('.')?;
            let digits = |s: &str| {
                let body = s.strip_prefix('-').unwrap_or(s);
                !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit())
            };
            if !digits(micros) || !id.bytes().all(|b| b.is_ascii_digit()) || id.is_empty() {
                return None;
            }
            let time = Timestamp::from_micros(micros.parse().ok()?)?;
            Some(Self::after(time, id.parse().ok()?))
        };
        parse().ok_or(Self::CURSOR_RULE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_as_its_position() {
        let at = Timestamp::now();
        for position in [SyncPosition::after(at, 42), SyncPosition::since(at)] {
            let cursor = position.to_cursor();
            assert!(cursor
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            assert_eq!(SyncPosition::parse_cursor(&cursor), Ok(position));
        }
        let epoch = SyncPosition::since(Timestamp::from_micros(0).unwrap());
        assert_eq!(SyncPosition::parse_cursor(&epoch.to_cursor()), Ok(epoch));
    }

    #[test]
    fn anything_else_is_not_a_cursor() {
        let encode = |text: &str| URL_SAFE_NO_PAD.encode(text);
        for bad in [
            String::new(),
            "abc".to_owned(),
            "%%%".to_owned(),
            encode("s2.1.2"),
            encode("s1.1"),
            encode("s1..2"),
            encode("s1.1.-2"),
            encode("s1.x.2"),
            encode("s1.1.2.3"),
            encode("s1.99999999999999999999.1"),
            "A".repeat(65),
        ] {
            assert!(SyncPosition::parse_cursor(&bad).is_err(), "{bad:?}");
        }
    }
}
