//! Unit tests of `ObjectReader`: what each reader method accepts, and the message of each
//! problem it records.

use super::*;

/// The problems found while `read` reads the object `body`, as (field, message) in the order
/// they were recorded, including fields left over.
fn problems(body: &str, read: impl FnOnce(&mut ObjectReader<'_, '_>)) -> Vec<(String, String)> {
    let raw: &RawValue = serde_json::from_str(body).expect("test bodies are valid JSON");
    let mut errors = Problems::new();
    if let Some(mut object) = ObjectReader::open(raw, None, "body", &mut errors) {
        read(&mut object);
        object.finish();
    }
    errors
        .listed()
        .iter()
        .map(|e| (e.field.to_string(), e.message.to_string()))
        .collect()
}

fn pair(field: &str, message: &str) -> (String, String) {
    (field.to_owned(), message.to_owned())
}

fn any_text(text: &str) -> Result<String, &'static str> {
    Ok(text.to_owned())
}

fn short_text(text: &str) -> Result<String, &'static str> {
    if text.chars().count() <= 3 {
        Ok(text.to_owned())
    } else {
        Err("must be at most 3 characters")
    }
}

fn any_integer(n: i64) -> Result<i64, &'static str> {
    Ok(n)
}

fn small_integer(n: i64) -> Result<i64, &'static str> {
    if (-100..=100).contains(&n) {
        Ok(n)
    } else {
        Err("must be from -100 to 100")
    }
}

fn exact_number(text: &str) -> Result<String, &'static str> {
    Ok(text.to_owned())
}

#[test]
fn a_valid_object_reads_every_kind_of_field_without_problems() {
    let mut read = None;
    let found = problems(
        r#"{"name": "abc", "count": -7, "price": 12.50, "active": true, "tags": ["x", "y"]}"#,
        |o| {
            read = Some((
                o.text("name", short_text),
                o.integer("count", small_integer),
                o.number("price", exact_number),
                o.boolean("active"),
                o.text_list("tags", any_text),
            ));
        },
    );
    assert!(found.is_empty(), "{found:?}");
    let (name, count, price, active, tags) = read.unwrap();
    assert_eq!(name.as_deref(), Some("abc"));
    assert_eq!(count, Some(-7));
    assert_eq!(
        price.as_deref(),
        Some("12.50"),
        "numbers reach the rule as written"
    );
    assert_eq!(active, Some(true));
    assert_eq!(tags, Some(vec!["x".to_owned(), "y".to_owned()]));
}

#[test]
fn a_missing_field_is_required() {
    let found = problems("{}", |o| {
        assert_eq!(o.text("name", any_text), None);
        assert_eq!(o.integer("count", any_integer), None);
        assert_eq!(o.number("price", exact_number), None);
        assert_eq!(o.boolean("active"), None);
        assert!(o.array("items").is_none());
    });
    let required = ["name", "count", "price", "active", "items"].map(|f| pair(f, "is required"));
    assert_eq!(found, required);
}

/// Reads field `f` with the reader method named `method`; whether it was accepted.
fn read_f(method: &str, o: &mut ObjectReader<'_, '_>) -> bool {
    match method {
        "text" => o.text("f", any_text).is_some(),
        "integer" => o.integer("f", any_integer).is_some(),
        "number" => o.number("f", exact_number).is_some(),
        "boolean" => o.boolean("f").is_some(),
        _ => unreachable!("no reader method {method}"),
    }
}

#[test]
fn a_wrong_json_type_names_the_type_expected_and_says_when_it_was_null() {
    for (method, value, message) in [
        ("text", "5", "must be a string"),
        ("text", "null", "must be a string, not null"),
        ("text", "[\"x\"]", "must be a string"),
        ("text", "{\"x\": 1}", "must be a string"),
        ("integer", "\"5\"", "must be a number"),
        ("integer", "null", "must be a number, not null"),
        ("number", "true", "must be a number"),
        ("boolean", "\"true\"", "must be a boolean"),
        ("boolean", "null", "must be a boolean, not null"),
    ] {
        let mut accepted = true;
        let found = problems(&format!(r#"{{"f": {value}}}"#), |o| {
            accepted = read_f(method, o)
        });
        assert!(!accepted, "{method} accepted {value}");
        assert_eq!(found, [pair("f", message)], "{method} given {value}");
    }
}

#[test]
fn a_bad_element_of_a_text_list_is_named_by_its_position() {
    let found = problems(r#"{"tags": ["ab", 7, "abcd", null]}"#, |o| {
        assert_eq!(o.text_list("tags", short_text), None);
    });
    assert_eq!(
        found,
        [
            pair("tags[1]", "must be a string"),
            pair("tags[2]", "must be at most 3 characters"),
            pair("tags[3]", "must be a string"),
        ]
    );
}

#[test]
fn integers_refuse_fractions_and_exponents_and_clamp_beyond_64_bits() {
    for (label, json, read, message) in [
        ("fraction", "1.5", None, Some("must be an integer")),
        ("zero fraction", "2.0", None, Some("must be an integer")),
        ("exponent", "1e3", None, Some("must be an integer")),
        (
            "upper-case exponent",
            "1E3",
            None,
            Some("must be an integer"),
        ),
        ("in range", "-100", Some(-100), None),
        // Beyond 64 bits the rule sees the nearest bound, so its own message applies.
        (
            "beyond 64 bits",
            "123456789012345678901234567890",
            None,
            Some("must be from -100 to 100"),
        ),
        (
            "below 64 bits",
            "-123456789012345678901234567890",
            None,
            Some("must be from -100 to 100"),
        ),
    ] {
        let body = format!(r#"{{"n": {json}}}"#);
        let mut value = None;
        let found = problems(&body, |o| value = o.integer("n", small_integer));
        assert_eq!(value, read, "{label}");
        let expected: Vec<_> = message.map(|m| pair("n", m)).into_iter().collect();
        assert_eq!(found, expected, "{label}");
    }
    let mut clamped = (None, None);
    problems(
        r#"{"up": 99999999999999999999, "down": -99999999999999999999}"#,
        |o| {
            clamped = (o.integer("up", any_integer), o.integer("down", any_integer));
        },
    );
    assert_eq!(clamped, (Some(i64::MAX), Some(i64::MIN)));
}

#[test]
fn a_field_nobody_reads_is_not_a_known_field() {
    let found = problems(r#"{"name": "abc", "nmae": "abc"}"#, |o| {
        o.text("name", any_text);
    });
    assert_eq!(found, [pair("nmae", "is not a known field")]);
}

#[test]
fn a_key_given_twice_appears_more_than_once_and_the_first_value_is_read() {
    let mut name = None;
    let found = problems(r#"{"name": "abc", "name": "a very long name"}"#, |o| {
        name = o.text("name", short_text);
    });
    assert_eq!(found, [pair("name", "appears more than once")]);
    assert_eq!(name.as_deref(), Some("abc"));
}

#[test]
fn a_body_that_is_not_an_object_is_named_as_the_caller_says() {
    for body in ["[]", "5", "\"text\"", "null"] {
        assert_eq!(
            problems(body, |_| {}),
            [pair("body", "must be a JSON object")],
            "{body}"
        );
    }
}

#[test]
fn every_problem_of_one_object_is_reported_at_once() {
    let found = problems(
        r#"{"name": "abcd", "name": "x", "count": 1.5, "active": null, "extra": 1}"#,
        |o| {
            o.text("name", short_text);
            o.integer("count", small_integer);
            o.boolean("active");
            o.array("tags");
        },
    );
    assert_eq!(
        found,
        [
            pair("name", "appears more than once"),
            pair("name", "must be at most 3 characters"),
            pair("count", "must be an integer"),
            pair("active", "must be a boolean, not null"),
            pair("tags", "is required"),
            pair("extra", "is not a known field"),
        ]
    );
}

#[test]
fn has_sees_a_field_only_until_it_is_read() {
    problems(r#"{"note": "x"}"#, |o| {
        assert!(o.has("note"));
        assert!(!o.has("other"));
        o.text("note", any_text);
        assert!(!o.has("note"));
    });
}

#[test]
fn a_problem_recorded_by_the_caller_goes_with_the_others() {
    let found = problems(r#"{"from": 5, "to": 3}"#, |o| {
        let (from, to) = (o.integer("from", any_integer), o.integer("to", any_integer));
        if from > to {
            o.fail("to", "must not be before from");
        }
    });
    assert_eq!(found, [pair("to", "must not be before from")]);
}
