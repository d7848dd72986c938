//! DynamoDB attribute values ↔ JSON without losing data. The common converters lose binary
//! (`B`) attributes and round numbers beyond f64; here binary becomes base64 text and a number
//! stays a JSON number only when it survives the round trip exactly (else its decimal string).

use base64::Engine as _;
use serde_json::{Map, Number, Value};

/// Deepest nesting converted (DynamoDB allows 32 levels).
const MAX_DEPTH: usize = 64;

/// Converts an item (`{"name": {"S": "x"}, ...}`) to a plain JSON object.
pub fn item_to_json(item: &Map<String, Value>) -> Result<Value, String> {
    map_to_json(item, 0)
}

fn map_to_json(item: &Map<String, Value>, depth: usize) -> Result<Value, String> {
    let mut out = Map::new();
    for (k, v) in item {
        out.insert(k.clone(), to_json(v, depth).map_err(|e| format!("{k}: {e}"))?);
    }
    Ok(Value::Object(out))
}

/// Converts one attribute value (`{"S": "x"}`, `{"N": "1"}`, `{"M": {...}}`...).
pub fn to_json(v: &Value, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err("attribute value nested too deeply".into());
    }
    let obj = v.as_object().filter(|o| o.len() == 1).ok_or("an attribute value is an object with one type key")?;
    let Some((ty, inner)) = obj.iter().next() else { return Err("empty attribute value".into()) };
    let str_of = |x: &Value| x.as_str().map(str::to_owned).ok_or_else(|| format!("`{ty}` holds a string"));
    let list_of = |x: &Value| x.as_array().cloned().ok_or_else(|| format!("`{ty}` holds a list"));
    match ty.as_str() {
        "S" => Ok(Value::String(str_of(inner)?)),
        "N" => number(&str_of(inner)?),
        "B" => binary(inner),
        "BOOL" => inner.as_bool().map(Value::Bool).ok_or_else(|| "`BOOL` holds a boolean".into()),
        "NULL" => Ok(Value::Null),
        "SS" => {
            list_of(inner)?.iter().map(|x| str_of(x).map(Value::String)).collect::<Result<_, _>>().map(Value::Array)
        }
        "NS" => list_of(inner)?.iter().map(|x| number(&str_of(x)?)).collect::<Result<_, _>>().map(Value::Array),
        "BS" => list_of(inner)?.iter().map(binary).collect::<Result<_, _>>().map(Value::Array),
        "L" => list_of(inner)?.iter().map(|x| to_json(x, depth + 1)).collect::<Result<_, _>>().map(Value::Array),
        "M" => {
            inner.as_object().ok_or_else(|| "`M` holds an object".to_owned()).and_then(|m| map_to_json(m, depth + 1))
        }
        other => Err(format!("unknown attribute type `{other}`")),
    }
}

/// Binary arrives base64-encoded in stream records; it is kept so (checked, normalized).
fn binary(v: &Value) -> Result<Value, String> {
    let s = v.as_str().ok_or("`B` holds base64 text")?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).map_err(|e| format!("`B` is not base64: {e}"))?;
    Ok(Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)))
}

/// A DynamoDB number (up to 38 digits): a JSON integer when it fits i64/u64, a JSON float
/// when f64 prints it back identically, else the decimal string.
fn number(s: &str) -> Result<Value, String> {
    let t = s.trim();
    let valid = !t.is_empty()
        && t.len() <= 64
        && t.chars().all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
        && t.chars().any(|c| c.is_ascii_digit());
    if !valid {
        return Err(format!("`N` is not a number ({} characters)", s.len()));
    }
    if let Ok(i) = t.parse::<i64>() {
        return Ok(Value::Number(i.into()));
    }
    if let Ok(u) = t.parse::<u64>() {
        return Ok(Value::Number(u.into()));
    }
    match t.parse::<f64>() {
        Ok(f) if f.is_finite() && f.to_string() == t => {
            Ok(Number::from_f64(f).map_or_else(|| Value::String(t.into()), Value::Number))
        }
        Ok(_) => Ok(Value::String(t.to_owned())),
        Err(_) => Err("`N` is not a number".into()),
    }
}

/// Converts plain JSON into an attribute value (for audit items written by this adapter).
pub fn from_json(v: &Value) -> Value {
    match v {
        Value::Null => serde_json::json!({"NULL": true}),
        Value::Bool(b) => serde_json::json!({"BOOL": b}),
        Value::Number(n) => serde_json::json!({"N": n.to_string()}),
        Value::String(s) => serde_json::json!({"S": s}),
        Value::Array(a) => serde_json::json!({"L": a.iter().map(from_json).collect::<Vec<_>>()}),
        Value::Object(m) => {
            serde_json::json!({"M": m.iter().map(|(k, v)| (k.clone(), from_json(v))).collect::<Map<_, _>>()})
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_binary_and_big_numbers() {
        let item = json!({
            "id": {"S": "a"},
            "blob": {"B": "AAEC/w=="},
            "big": {"N": "123456789012345678901234567890"},
            "precise": {"N": "0.1000000000000000000001"},
            "small": {"N": "42"},
            "float": {"N": "1.5"},
            "neg": {"N": "-7"},
            "set": {"NS": ["1", "99999999999999999999"]},
            "bins": {"BS": ["AQ=="]},
            "nested": {"M": {"l": {"L": [{"BOOL": true}, {"NULL": true}, {"SS": ["x"]}]}}}
        });
        let out = item_to_json(item.as_object().unwrap()).unwrap();
        assert_eq!(
            out,
            json!({
                "id": "a", "blob": "AAEC/w==", "big": "123456789012345678901234567890",
                "precise": "0.1000000000000000000001", "small": 42, "float": 1.5, "neg": -7,
                "set": [1, "99999999999999999999"], "bins": ["AQ=="],
                "nested": {"l": [true, null, ["x"]]}
            })
        );
    }

    #[test]
    fn rejects_malformed_values() {
        for bad in [json!({"X": "1"}), json!({"N": "abc"}), json!({"B": "%%%"}), json!({"S": 1}), json!({}), json!("S")]
        {
            assert!(to_json(&bad, 0).is_err(), "{bad}");
        }
        let mut deep = json!({"S": "x"});
        for _ in 0..100 {
            deep = json!({"L": [deep]});
        }
        assert!(to_json(&deep, 0).unwrap_err().contains("deeply"));
    }

    #[test]
    fn plain_json_round_trips() {
        let v = json!({"a": [1, "x", null, true, {"b": 2.5}]});
        let attr = from_json(&v);
        assert_eq!(to_json(&attr, 0).unwrap(), v);
    }
}
