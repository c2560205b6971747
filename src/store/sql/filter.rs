//! The `WHERE` clause of a list query: conditions on constant column names, each with its value
//! bound as a parameter, so that no input ever becomes SQL text.

use chrono::NaiveDateTime;
use sqlx::query::QueryAs;
use sqlx::{Database, Encode, Type};

use crate::domain::{Scope, SellerId, Timestamp};

/// A value to bind.
#[derive(Debug, Clone, Copy)]
pub(in crate::store) enum Value<'a> {
    Text(&'a str),
    Int(i64),
    Time(NaiveDateTime),
}

/// Conditions joined with `AND`; an empty filter matches every row.
#[derive(Debug, Default)]
pub(in crate::store) struct Filter<'a> {
    /// Each condition's SQL before its value, e.g. `seller_id = ` (or the whole condition
    /// when it has no value), with the value.
    conditions: Vec<(String, Option<Value<'a>>)>,
    /// Conditions with several values: the SQL (from constants, with a `?` per value) and
    /// the values in order.
    compound: Vec<(&'static str, Vec<Value<'a>>)>,
    /// Sellers the rows must belong to (`None`: any).
    sellers: Option<&'a [SellerId]>,
}

impl<'a> Filter<'a> {
    /// `column = value`, when a value is given.
    pub fn eq(mut self, column: &str, value: Option<&'a str>) -> Self {
        if let Some(value) = value {
            self.conditions
                .push((format!("{column} = "), Some(Value::Text(value))));
        }
        self
    }

    /// `column = value` for a number, when one is given.
    pub fn eq_int(mut self, column: &str, value: Option<i64>) -> Self {
        if let Some(value) = value {
            self.conditions
                .push((format!("{column} = "), Some(Value::Int(value))));
        }
        self
    }

    /// `column >= at`, when a time is given.
    pub fn since(mut self, column: &str, at: Option<Timestamp>) -> Self {
        if let Some(at) = at {
            self.conditions
                .push((format!("{column} >= "), Some(Value::Time(at.naive_utc()))));
        }
        self
    }

    /// `column < at`, when a time is given.
    pub fn until(mut self, column: &str, at: Option<Timestamp>) -> Self {
        if let Some(at) = at {
            self.conditions
                .push((format!("{column} < "), Some(Value::Time(at.naive_utc()))));
        }
        self
    }

    /// A condition without a value, written by the caller from constants only.
    pub fn condition(mut self, sql: &str) -> Self {
        self.conditions.push((format!("({sql})"), None));
        self
    }

    /// A condition with a `?` for each of `values`, in order, written by the caller from
    /// constants only.
    pub fn condition_with(mut self, sql: &'static str, values: Vec<Value<'a>>) -> Self {
        self.compound.push((sql, values));
        self
    }

    /// Only rows of the sellers `scope` allows (column `seller_id`).
    pub fn scope(mut self, scope: &'a Scope) -> Self {
        if let Scope::Sellers(sellers) = scope {
            self.sellers = Some(sellers);
        }
        self
    }

    /// ` WHERE ...` with a `?` per value (empty when there are no conditions), and the values
    /// in order, for `bind`.
    pub fn to_sql(&self) -> (String, Vec<Value<'a>>) {
        let mut parts = Vec::new();
        let mut values = Vec::new();
        for (sql, value) in &self.conditions {
            match value {
                Some(value) => {
                    parts.push(format!("{sql}?"));
                    values.push(*value);
                }
                None => parts.push(sql.clone()),
            }
        }
        for (sql, bound) in &self.compound {
            parts.push(format!("({sql})"));
            values.extend(bound.iter().copied());
        }
        match self.sellers {
            Some([]) => parts.push("1 = 0".to_owned()),
            Some(sellers) => {
                parts.push(format!("seller_id IN ({})", marks(sellers.len())));
                values.extend(sellers.iter().map(|s| Value::Text(s.as_str())));
            }
            None => {}
        }
        if parts.is_empty() {
            (String::new(), values)
        } else {
            (format!(" WHERE {}", parts.join(" AND ")), values)
        }
    }
}

/// `n` placeholders: `?, ?, ?`.
pub(in crate::store) fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// `rows` groups of `columns` placeholders: `(?, ?), (?, ?)`, for a multi-row `VALUES`.
pub(in crate::store) fn groups(rows: usize, columns: usize) -> String {
    vec![format!("({})", marks(columns)); rows].join(", ")
}

/// `query` with `values` bound, in order.
pub(in crate::store) fn bind<'q, DB, O>(
    mut query: QueryAs<'q, DB, O, <DB as Database>::Arguments<'q>>,
    values: &[Value<'q>],
) -> QueryAs<'q, DB, O, <DB as Database>::Arguments<'q>>
where
    DB: Database,
    &'q str: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    NaiveDateTime: Encode<'q, DB> + Type<DB>,
{
    for value in values {
        query = match *value {
            Value::Text(v) => query.bind(v),
            Value::Int(v) => query.bind(v),
            Value::Time(v) => query.bind(v),
        };
    }
    query
}
