//! Conditional requests: the entity tags of `If-Match` and `If-None-Match`, and what they
//! allow. A row's entity tag is its version, strong and quoted: `ETag: "3"` (docs/api.md,
//! "Conditional requests").
//!
//! The store checks a write's `Precondition` against the row it has locked, in the transaction
//! that writes it, so that no other write can come between the check and the change.

/// A record with a version: its entity tag is `"<version>"`.
pub trait Versioned {
    fn version(&self) -> i64;
}

impl Versioned for super::Inventory {
    fn version(&self) -> i64 {
        self.version
    }
}

impl Versioned for super::SalesTarget {
    fn version(&self) -> i64 {
        self.version
    }
}

impl Versioned for super::Reservation {
    fn version(&self) -> i64 {
        super::Reservation::version(self)
    }
}

/// The entity tags a header lists: `*` (any current row), or versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tags {
    /// `*`: matches when the row exists.
    Any,
    /// The versions listed. Empty when every tag listed was weak in an `If-Match`, which
    /// compares strongly: such a list matches nothing.
    Versions(Vec<i64>),
}

impl Tags {
    pub const RULE: &'static str =
        "must be * or one or more entity tags of this API, such as \"3\" (quotes included)";

    /// Most tags one header may list.
    const MAX_TAGS: usize = 32;

    /// Reads a header's value: `*`, or a comma-separated list of `"<version>"` tags, each
    /// optionally weak (`W/"3"`). Weak tags are kept only when `keep_weak` (`If-None-Match`
    /// compares weakly; `If-Match` strongly, so a weak tag there never matches). A tag this
    /// API could not have given out (not a positive integer) is refused, so that a client's
    /// mistake (`3` without quotes) is a 422 rather than a silent 412.
    pub fn parse(value: &str, keep_weak: bool) -> Result<Self, &'static str> {
        let value = value.trim();
        if value == "*" {
            return Ok(Self::Any);
        }
        let mut versions = Vec::new();
        let mut listed = 0;
        for tag in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            listed += 1;
            if listed > Self::MAX_TAGS {
                return Err(Self::RULE);
            }
            let (weak, quoted) = match tag.strip_prefix("W/") {
                Some(rest) => (true, rest),
                None => (false, tag),
            };
            let version = quoted
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|digits| digits.parse::<i64>().ok())
                .filter(|v| *v >= 1)
                .ok_or(Self::RULE)?;
            if keep_weak || !weak {
                versions.push(version);
            }
        }
        if listed == 0 {
            return Err(Self::RULE);
        }
        Ok(Self::Versions(versions))
    }

    /// Whether a row at `current` (`None`: no row) matches.
    fn matches(&self, current: Option<i64>) -> bool {
        match (self, current) {
            (_, None) => false,
            (Self::Any, Some(_)) => true,
            (Self::Versions(versions), Some(v)) => versions.contains(&v),
        }
    }
}

/// The conditions of a request (`If-Match`, `If-None-Match`); both absent, it always holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Precondition {
    pub if_match: Option<Tags>,
    pub if_none_match: Option<Tags>,
}

/// What a read does under its `Precondition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Answer with the row.
    Send,
    /// `If-None-Match` matched: 304, no body.
    NotModified,
    /// `If-Match` did not: 412.
    Failed,
}

impl Precondition {
    /// Only if the row is at this version (`If-Match: "<version>"`).
    pub fn if_match(version: i64) -> Self {
        Self {
            if_match: Some(Tags::Versions(vec![version])),
            if_none_match: None,
        }
    }

    /// Whether the request set no condition.
    pub fn is_none(&self) -> bool {
        self.if_match.is_none() && self.if_none_match.is_none()
    }

    /// Whether a write may change a row at version `current` (`None`: no row with the key or
    /// id), as RFC 9110 §13.1 says: `If-Match` must match (and so needs a row);
    /// `If-None-Match` must not (`*` needs no row).
    pub fn allows(&self, current: Option<i64>) -> bool {
        let matched = self
            .if_match
            .as_ref()
            .is_none_or(|tags| tags.matches(current));
        let none_matched = self
            .if_none_match
            .as_ref()
            .is_none_or(|tags| !tags.matches(current));
        matched && none_matched
    }

    /// What a `GET` of a row at version `current` answers: 412 when `If-Match` fails, 304
    /// when `If-None-Match` matches, else the row.
    pub fn on_read(&self, current: i64) -> ReadOutcome {
        if let Some(tags) = &self.if_match {
            if !tags.matches(Some(current)) {
                return ReadOutcome::Failed;
            }
        }
        match &self.if_none_match {
            Some(tags) if tags.matches(Some(current)) => ReadOutcome::NotModified,
            _ => ReadOutcome::Send,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_read_as_tags_or_are_refused() {
        assert_eq!(Tags::parse("*", false), Ok(Tags::Any));
        assert_eq!(Tags::parse(" \"3\" ", false), Ok(Tags::Versions(vec![3])));
        assert_eq!(
            Tags::parse("\"3\", W/\"4\",\"5\"", true),
            Ok(Tags::Versions(vec![3, 4, 5]))
        );
        assert_eq!(
            Tags::parse("\"3\", W/\"4\"", false),
            Ok(Tags::Versions(vec![3]))
        );
        assert_eq!(Tags::parse("W/\"4\"", false), Ok(Tags::Versions(vec![])));
        for bad in [
            "",
            "3",
            "\"\"",
            "\"-1\"",
            "\"0\"",
            "\"+3\"",
            "\"abc\"",
            "'3'",
            "\"3",
            "W/3",
            "**",
            "\"99999999999999999999\"",
            ",",
        ] {
            assert_eq!(Tags::parse(bad, true), Err(Tags::RULE), "{bad:?}");
        }
        let many = vec!["\"1\""; 33].join(",");
        assert_eq!(Tags::parse(&many, true), Err(Tags::RULE));
    }

    #[test]
    fn writes_follow_if_match_and_if_none_match() {
        let none = Precondition::default();
        assert!(none.allows(None) && none.allows(Some(4)));

        let at_3 = Precondition::if_match(3);
        assert!(at_3.allows(Some(3)));
        assert!(!at_3.allows(Some(4)));
        assert!(!at_3.allows(None), "If-Match needs a row");

        let exists = Precondition {
            if_match: Some(Tags::Any),
            if_none_match: None,
        };
        assert!(exists.allows(Some(9)) && !exists.allows(None));

        let create_only = Precondition {
            if_match: None,
            if_none_match: Some(Tags::Any),
        };
        assert!(create_only.allows(None) && !create_only.allows(Some(1)));

        let not_3 = Precondition {
            if_match: None,
            if_none_match: Some(Tags::Versions(vec![3])),
        };
        assert!(not_3.allows(Some(4)) && not_3.allows(None) && !not_3.allows(Some(3)));

        let weak_only = Precondition {
            if_match: Some(Tags::Versions(vec![])),
            if_none_match: None,
        };
        assert!(!weak_only.allows(Some(3)));
    }

    #[test]
    fn reads_answer_not_modified_or_failed() {
        let fresh = Precondition {
            if_match: None,
            if_none_match: Some(Tags::Versions(vec![2, 3])),
        };
        assert_eq!(fresh.on_read(3), ReadOutcome::NotModified);
        assert_eq!(fresh.on_read(4), ReadOutcome::Send);
        let any = Precondition {
            if_match: None,
            if_none_match: Some(Tags::Any),
        };
        assert_eq!(any.on_read(1), ReadOutcome::NotModified);
        assert_eq!(Precondition::if_match(2).on_read(3), ReadOutcome::Failed);
        assert_eq!(Precondition::if_match(3).on_read(3), ReadOutcome::Send);
        assert_eq!(Precondition::default().on_read(3), ReadOutcome::Send);
    }
}
