//! Batch writes: `Batch<T>`, a body `{"items": [...]}` whose items are read like single bodies,
//! and `reject_repeated_keys` for the handlers whose items must name distinct rows.

use std::collections::HashMap;
use std::hash::Hash;

use super::object::{read_object, FromJsonObject, ObjectReader};
use crate::error::{ApiError, FieldError, Problems};

/// Most items one batch request may carry: a batch is written in one transaction, and a bound
/// keeps that transaction, and the 422 listing its problems, a sane size.
pub const MAX_BATCH_ITEMS: usize = 1000;

/// A batch body `{"items": [...]}`, each item read like a single body; a problem of item `i`
/// is reported with `"index": i`. Also the shape of a batch's answer.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Batch<T> {
    pub items: Vec<T>,
}

impl<T: FromJsonObject> FromJsonObject for Batch<T> {
    fn read(o: &mut ObjectReader<'_, '_>) -> Option<Self> {
        let raw_items = o.array("items")?;
        if !(1..=MAX_BATCH_ITEMS).contains(&raw_items.len()) {
            o.fail("items", format!("must hold 1 to {MAX_BATCH_ITEMS} items"));
            return None;
        }
        let mut items = Vec::with_capacity(raw_items.len());
        let mut all_valid = true;
        for (index, raw) in raw_items.into_iter().enumerate() {
            match read_object::<T>(raw, Some(index), "items", o.errors()) {
                Some(item) => items.push(item),
                None => all_valid = false,
            }
        }
        all_valid.then_some(Self { items })
    }
}

/// Refuses a batch that names one key twice: which of the two should win is anyone's guess.
pub fn reject_repeated_keys<K: Hash + Eq>(
    keys: impl Iterator<Item = K>,
    key_names: &'static str,
) -> Result<(), ApiError> {
    let mut first_seen = HashMap::new();
    let mut errors = Problems::new();
    for (index, key) in keys.enumerate() {
        if let Some(&first) = first_seen.get(&key) {
            errors.push_with(|| {
                FieldError::new(
                    "items",
                    format!("repeats the ({key_names}) of item {first}"),
                )
                .at(Some(index))
            });
        } else {
            first_seen.insert(key, index);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;

    /// A batch item with one required, checked field.
    #[derive(Debug, PartialEq)]
    struct Item(i64);

    impl FromJsonObject for Item {
        fn read(o: &mut ObjectReader<'_, '_>) -> Option<Self> {
            o.integer("n", |n| {
                if n > 0 {
                    Ok(Item(n))
                } else {
                    Err("must be positive")
                }
            })
        }
    }

    /// One recorded problem: (index, field, message).
    type Problem = (Option<usize>, String, String);

    /// The batch read from `body`, and its problems.
    fn read_batch(body: &str) -> (Option<Batch<Item>>, Vec<Problem>) {
        let raw: &RawValue = serde_json::from_str(body).expect("test bodies are valid JSON");
        let mut errors = Problems::new();
        let batch = read_object::<Batch<Item>>(raw, None, "body", &mut errors);
        let errors = errors
            .listed()
            .iter()
            .map(|e| (e.index, e.field.to_string(), e.message.to_string()))
            .collect();
        (batch, errors)
    }

    fn at(index: Option<usize>, field: &str, message: &str) -> Problem {
        (index, field.to_owned(), message.to_owned())
    }

    #[test]
    fn a_valid_batch_reads_every_item_in_order() {
        let (batch, errors) = read_batch(r#"{"items": [{"n": 1}, {"n": 2}]}"#);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(batch.unwrap().items, [Item(1), Item(2)]);
    }

    #[test]
    fn each_item_error_carries_the_index_of_its_item_and_all_items_are_checked() {
        let (batch, errors) =
            read_batch(r#"{"items": [{"n": 1}, {"n": 0}, {}, 5, {"n": 3, "x": 1, "x": 2}]}"#);
        assert!(batch.is_none());
        assert_eq!(
            errors,
            [
                at(Some(1), "n", "must be positive"),
                at(Some(2), "n", "is required"),
                at(Some(3), "items", "must be a JSON object"),
                at(Some(4), "x", "appears more than once"),
                at(Some(4), "x", "is not a known field"),
            ]
        );
    }

    #[test]
    fn a_batch_holds_one_to_the_maximum_number_of_items() {
        let item = r#"{"n": 1}"#;
        let full = format!(r#"{{"items": [{}]}}"#, [item; MAX_BATCH_ITEMS].join(","));
        let over = format!(
            r#"{{"items": [{}]}}"#,
            [item; MAX_BATCH_ITEMS + 1].join(",")
        );
        assert_eq!(
            read_batch(&full).0.map(|b| b.items.len()),
            Some(MAX_BATCH_ITEMS)
        );
        let size = format!("must hold 1 to {MAX_BATCH_ITEMS} items");
        for body in [r#"{"items": []}"#, over.as_str()] {
            let (batch, errors) = read_batch(body);
            assert!(batch.is_none());
            assert_eq!(errors, [at(None, "items", &size)]);
        }
    }

    #[test]
    fn a_repeated_key_names_the_item_that_had_it_first() {
        assert!(reject_repeated_keys(["a", "b"].into_iter(), "sku").is_ok());
        let Err(ApiError::Validation(errors)) =
            reject_repeated_keys(["a", "b", "a", "a"].into_iter(), "sku")
        else {
            panic!("a repeated key must be refused");
        };
        let errors: Vec<_> = errors
            .listed()
            .iter()
            .map(|e| (e.index, e.message.to_string()))
            .collect();
        assert_eq!(
            errors,
            [
                (Some(2), "repeats the (sku) of item 0".to_owned()),
                (Some(3), "repeats the (sku) of item 0".to_owned()),
            ]
        );
    }
}
