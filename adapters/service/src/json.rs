//! JSON as Warden reads it from a request, message or document: standard JSON with one extra
//! rule, **an object may not repeat a key**.
//!
//! RFC 8259 leaves duplicate names to the parser, and parsers disagree: serde_json keeps the
//! last, many proxies, WAFs and agent runtimes keep the first. A body like
//! `{"tool":"python.exec",…,"tool":"t"}` would then be decided as tool `t` by Warden and run as
//! `python.exec` by whatever reads it next, and a duplicated payload field would hide its first
//! value from detection. Rejecting the ambiguity is the only answer every reader agrees with.

use core::fmt;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Parses `bytes` as JSON, rejecting an object that repeats a key (the error names the key,
/// line and column). Depth and number rules are serde_json's.
pub fn from_slice(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Strict.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// [`from_slice`] for text.
pub fn from_str(text: &str) -> Result<Value, serde_json::Error> {
    from_slice(text.as_bytes())
}

/// Builds a [`Value`] like serde_json's own visitor, but refuses repeated object keys.
#[derive(Clone, Copy)]
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // serde_json only yields finite floats; `from_f64` is None otherwise.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        // No pre-allocation from size hints: the length is the client's to claim.
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Strict)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key `{}`", Shown(&key))));
            }
            let value = map.next_value_seed(Strict)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// A key as an error message shows it: at most 64 characters, control characters escaped, so
/// a hostile key can neither flood a log line nor forge one.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        const MAX: usize = 64;
        for (i, c) in self.0.chars().enumerate() {
            if i == MAX {
                return f.write_str("…");
            }
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_serde_json_parses() {
        for text in [
            r#"{"a":1,"b":[true,null,-2,3.5,"x",{"c":{}}],"d":18446744073709551615,"e":-9223372036854775808}"#,
            r#"[]"#,
            r#""\u00e9\ud83d\ude00""#,
            r#"  {"a" : [ 1 , 2 ] }  "#,
            "1e300",
        ] {
            assert_eq!(from_str(text).unwrap(), serde_json::from_str::<Value>(text).unwrap(), "{text}");
        }
    }

    #[test]
    fn keeps_key_order() {
        let v = from_str(r#"{"z":1,"a":2,"m":3}"#).unwrap();
        assert_eq!(v.as_object().unwrap().keys().collect::<Vec<_>>(), ["z", "a", "m"]);
    }

    #[test]
    fn rejects_a_repeated_key_at_any_depth_naming_it() {
        for (text, key) in [
            (r#"{"tool":"python.exec","raw_text":"x","tool":"t"}"#, "tool"),
            (r#"{"payload":{"a":{"ssn":"1","ssn":"2"}}}"#, "ssn"),
            (r#"[{"k":1},{"k":2,"k":3}]"#, "k"),
            // The same key after escape decoding is the same key.
            (r#"{"tool":1,"t\u006fol":2}"#, "tool"),
        ] {
            let e = from_str(text).unwrap_err().to_string();
            assert!(e.contains(&format!("duplicate key `{key}`")), "{text}: {e}");
            assert!(e.contains("line 1 column"), "{e}");
        }
        // Equal keys in different objects are fine.
        assert!(from_str(r#"{"a":{"k":1},"b":{"k":2}}"#).is_ok());
    }

    #[test]
    fn a_hostile_key_is_shown_short_and_escaped() {
        let key = format!("\n{}", "k".repeat(10_000));
        let text = format!(r#"{{"{0}":1,"{0}":2}}"#, key.replace('\n', "\\n"));
        let e = from_str(&text).unwrap_err().to_string();
        assert!(e.len() < 200, "{e}");
        assert!(e.contains("`\\nkkk") && e.contains('…') && !e.contains('\n'), "{e}");
    }

    #[test]
    fn depth_and_trailing_garbage_are_still_errors() {
        assert!(from_str(&"[".repeat(100_000)).is_err());
        assert!(from_str(r#"{"a":1} x"#).is_err());
        assert!(from_str(r#"{"a":1,}"#).is_err());
    }
}
