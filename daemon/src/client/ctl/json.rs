//! A tiny JSON writer: `dsmilctl --json` emits flat objects and arrays of
//! numbers, booleans and strings, which does not justify a serializer dependency.

use std::fmt::Write;

/// `s` as a JSON string literal, quotes included.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Builds one JSON object, field by field, in insertion order.
#[derive(Default)]
pub struct Object {
    body: String,
}

impl Object {
    /// An empty object.
    pub fn new() -> Object {
        Object::default()
    }

    fn key(&mut self, key: &str) {
        if !self.body.is_empty() {
            self.body.push(',');
        }
        self.body.push_str(&string(key));
        self.body.push(':');
    }

    /// A field whose value is already JSON (a number, a nested object, an array).
    pub fn raw(mut self, key: &str, json: impl std::fmt::Display) -> Object {
        self.key(key);
        let _ = write!(self.body, "{json}");
        self
    }

    /// A string field.
    pub fn str(self, key: &str, value: &str) -> Object {
        self.raw(key, string(value))
    }

    /// The object's text.
    pub fn finish(self) -> String {
        format!("{{{}}}", self.body)
    }
}

/// A JSON array of already-encoded values.
pub fn array(items: impl IntoIterator<Item = String>) -> String {
    format!("[{}]", items.into_iter().collect::<Vec<_>>().join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        assert_eq!(string("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
        assert_eq!(string("°C"), "\"°C\"");
    }

    #[test]
    fn objects_and_arrays() {
        let o = Object::new()
            .str("k", "v")
            .raw("n", 5)
            .raw("b", true)
            .raw("a", array(["1".to_string(), "2".to_string()]))
            .finish();
        assert_eq!(o, r#"{"k":"v","n":5,"b":true,"a":[1,2]}"#);
        assert_eq!(Object::new().finish(), "{}");
    }
}
