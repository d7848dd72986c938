//! What a blob in `ai-requests` is: a request batch (the Tork guide's JSON array of
//! `{id, payload, agent_id}`, a single invoke envelope, or JSON lines of either) or a document.

use serde_json::{Map, Value};

/// One request of a batch blob.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// The item's `id` (its index when it has none).
    pub id: Value,
    /// The envelope without `id`.
    pub body: Value,
}

/// How a blob reads.
#[derive(Clone, Debug, PartialEq)]
pub enum Blob {
    /// A request batch.
    Requests(Vec<Item>),
    /// A batch with more than the allowed number of items.
    TooMany(usize),
    /// Anything else: governed as a document.
    Document,
}

/// An object is a request when it names an `action`, a `payload` or batch `requests`.
fn is_request(v: &Value) -> bool {
    v.as_object().is_some_and(|m| m.contains_key("action") || m.contains_key("payload") || m.contains_key("requests"))
}

fn item(index: usize, v: Value) -> Item {
    let mut map = match v {
        Value::Object(m) => m,
        // `is_request` admitted only objects.
        other => Map::from_iter([("payload".to_owned(), other)]),
    };
    let id = map.remove("id").unwrap_or_else(|| Value::from(index));
    Item { id, body: Value::Object(map) }
}

/// Reads `bytes` as a batch of at most `max` requests, else as a document.
pub fn classify(bytes: &[u8], max: usize) -> Blob {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Array(items)) if !items.is_empty() && items.iter().all(is_request) => {
            if items.len() > max {
                return Blob::TooMany(items.len());
            }
            Blob::Requests(items.into_iter().enumerate().map(|(i, v)| item(i, v)).collect())
        }
        Ok(v) if is_request(&v) => Blob::Requests(vec![item(0, v)]),
        Ok(_) => Blob::Document,
        Err(_) => json_lines(bytes, max),
    }
}

fn json_lines(bytes: &[u8], max: usize) -> Blob {
    let Ok(text) = core::str::from_utf8(bytes) else { return Blob::Document };
    let mut items = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match serde_json::from_str::<Value>(line) {
            Ok(v) if is_request(&v) => {
                if items.len() >= max {
                    return Blob::TooMany(text.lines().filter(|l| !l.trim().is_empty()).count());
                }
                items.push(item(items.len(), v));
            }
            _ => return Blob::Document,
        }
    }
    if items.len() < 2 {
        // One line would have parsed as a whole; zero lines are an empty document.
        return Blob::Document;
    }
    Blob::Requests(items)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;
    use serde_json::json;

    #[test]
    fn the_guides_array_is_a_batch() {
        let blob = json!([
            {"id": "r1", "payload": {"email": "a@b.co"}, "agent_id": "a1"},
            {"payload": {"text": "hello"}}
        ]);
        let Blob::Requests(items) = classify(blob.to_string().as_bytes(), 10) else { panic!() };
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].id, json!("r1"));
        assert_eq!(items[0].body, json!({"payload": {"email": "a@b.co"}, "agent_id": "a1"}));
        assert_eq!(items[1].id, json!(1));
    }

    #[test]
    fn an_envelope_and_json_lines_are_batches() {
        let one = br#"{"action":"precheck","tool":"t","raw_text":"x"}"#;
        assert!(matches!(classify(one, 10), Blob::Requests(v) if v.len() == 1));
        let lines = b"{\"id\":1,\"payload\":{\"a\":\"b\"}}\n\n{\"action\":\"redact\",\"text\":\"x\"}\n";
        assert!(matches!(classify(lines, 10), Blob::Requests(v) if v.len() == 2));
        assert_eq!(classify(lines, 1), Blob::TooMany(2));
    }

    #[test]
    fn everything_else_is_a_document() {
        for doc in [
            &br#"{"customer":{"email":"a@b.co"}}"#[..],
            b"[1,2,3]",
            b"[]",
            b"plain text with an email a@b.co",
            b"{\"payload\":1}\nnot json",
            b"\xff\xfe binary",
            b"",
        ] {
            assert_eq!(classify(doc, 10), Blob::Document, "{}", String::from_utf8_lossy(doc));
        }
        let many = serde_json::to_vec(&vec![json!({"payload": {}}); 3]).unwrap();
        assert_eq!(classify(&many, 2), Blob::TooMany(3));
    }
}
