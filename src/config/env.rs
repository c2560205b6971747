//! `Env`: reads variables through a lookup, one method per kind of value (a port, a number in
//! a range, a flag, one of a few words, a comma-separated list), and `ConfigError`, what they
//! fail with.
//!
//! Every method trims the value, treats an empty one as unset (`Ok(None)`), and names the
//! variable in its error. Which variables exist, their defaults and the checks that involve
//! several of them are `Config::from_lookup`'s business (`mod.rs`), not this file's.

use std::ops::RangeInclusive;
use std::str::FromStr;

/// A bad setting: which variable, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

pub(super) fn bad(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        problem: problem.into(),
    }
}

/// The variables, as one lookup (the process environment, or a test's list) provides them.
pub(super) struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Env<'a> {
    pub(super) fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self { lookup }
    }

    /// The value of `name`, trimmed; `None` when unset or empty.
    pub(super) fn text(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    }

    /// The value of `name` as `parse` reads it; `problem` when it cannot.
    pub(super) fn read<T>(
        &self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
        problem: &str,
    ) -> Result<Option<T>, ConfigError> {
        self.text(name)
            .map(|value| parse(&value).ok_or_else(|| bad(name, problem)))
            .transpose()
    }

    /// The value of `name` as a `T` (an address, a whole number).
    pub(super) fn parsed<T: FromStr>(
        &self,
        name: &'static str,
        problem: &str,
    ) -> Result<Option<T>, ConfigError> {
        self.read(name, |value| value.parse().ok(), problem)
    }

    /// The value of `name` as a number within `range`.
    pub(super) fn number_in<T: FromStr + PartialOrd>(
        &self,
        name: &'static str,
        range: RangeInclusive<T>,
        problem: &str,
    ) -> Result<Option<T>, ConfigError> {
        let parse = |value: &str| value.parse().ok().filter(|n| range.contains(n));
        self.read(name, parse, problem)
    }

    /// The value of `name` as a TCP port; 0 ("any port") is refused, as a listener needs one
    /// that clients can be told.
    pub(super) fn port(&self, name: &'static str) -> Result<Option<u16>, ConfigError> {
        self.number_in(name, 1..=u16::MAX, "must be a port from 1 to 65535")
    }

    /// The value of `name` as a yes/no: true, 1 or yes; false, 0 or no (any case).
    pub(super) fn flag(&self, name: &'static str) -> Result<Option<bool>, ConfigError> {
        let parse = |value: &str| match value.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" => Some(false),
            _ => None,
        };
        self.read(name, parse, "must be true or false")
    }

    /// The value of `name` as one of `options`, by their exact (case-sensitive) word.
    pub(super) fn choice<T: Copy>(
        &self,
        name: &'static str,
        options: &[(&str, T)],
    ) -> Result<Option<T>, ConfigError> {
        let words: Vec<&str> = options.iter().map(|(word, _)| *word).collect();
        let problem = match words.split_last() {
            Some((last, [])) => format!("must be {last}"),
            Some((last, rest)) => format!("must be {} or {last}", rest.join(", ")),
            None => "must not be set".to_owned(),
        };
        let parse = |value: &str| {
            options
                .iter()
                .find(|(word, _)| *word == value)
                .map(|(_, option)| *option)
        };
        self.read(name, parse, &problem)
    }

    /// The value of `name` as a comma-separated list, each non-empty item read by `parse`;
    /// `problem` when any item cannot be.
    pub(super) fn list<T>(
        &self,
        name: &'static str,
        parse: impl Fn(&str) -> Option<T>,
        problem: &str,
    ) -> Result<Option<Vec<T>>, ConfigError> {
        let parse_all = |value: &str| {
            value
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(&parse)
                .collect::<Option<Vec<T>>>()
        };
        self.read(name, parse_all, problem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with<R>(value: &str, read: impl FnOnce(&Env<'_>) -> R) -> R {
        let value = value.to_owned();
        let lookup = move |name: &str| (name == "X").then(|| value.clone());
        read(&Env::new(&lookup))
    }

    #[test]
    fn a_blank_value_counts_as_unset_and_values_are_trimmed() {
        assert_eq!(with("   ", |env| env.text("X")), None);
        assert_eq!(with(" a b ", |env| env.text("X")).as_deref(), Some("a b"));
        assert_eq!(with("", |env| env.port("X")), Ok(None));
        assert_eq!(with("", |env| env.text("Y")), None);
    }

    #[test]
    fn each_kind_of_value_reads_what_it_should_and_names_the_variable_otherwise() {
        assert_eq!(with("8080", |env| env.port("X")), Ok(Some(8080)));
        for bad_port in ["0", "65536", "-1", "http"] {
            let err = with(bad_port, |env| env.port("X")).unwrap_err();
            assert_eq!(
                (err.var, err.problem.as_str()),
                ("X", "must be a port from 1 to 65535")
            );
        }
        assert_eq!(
            with("10", |env| env.number_in("X", 1..=10, "p")),
            Ok(Some(10))
        );
        assert_eq!(
            with("11", |env| env.number_in("X", 1..=10, "p")),
            Err(bad("X", "p"))
        );
        for (text, value) in [
            ("TRUE", true),
            ("yes", true),
            ("1", true),
            ("No", false),
            ("0", false),
        ] {
            assert_eq!(with(text, |env| env.flag("X")), Ok(Some(value)), "{text}");
        }
        assert_eq!(
            with("on", |env| env.flag("X")),
            Err(bad("X", "must be true or false"))
        );
        let abc = [("a", 1), ("b", 2), ("c", 3)];
        assert_eq!(with("b", |env| env.choice("X", &abc)), Ok(Some(2)));
        assert_eq!(
            with("B", |env| env.choice("X", &abc)),
            Err(bad("X", "must be a, b or c"))
        );
        assert_eq!(
            with("z", |env| env.choice("X", &abc[..2])),
            Err(bad("X", "must be a or b"))
        );
        let numbers = |env: &Env<'_>| env.list("X", |item| item.parse::<u8>().ok(), "p");
        assert_eq!(with(" 1, 2 ,,3 ", numbers), Ok(Some(vec![1, 2, 3])));
        assert_eq!(with("1, x", numbers), Err(bad("X", "p")));
    }
}
