//! Every integer in the CRDs gets bounds that match its Rust type, so the API server refuses a
//! value the operator could not decode (a `u32` field set to 4294967296 would otherwise be
//! stored, and fail every later decode of the object). Bounds set on a field stay; missing ones
//! are filled in from the field's `format`.
use serde_json::{Value, json};

/// The integer range of an OpenAPI `format`. 64-bit integers are bounded to the range JSON
/// numbers carry exactly (±2^53 − 1), which every Kubernetes client reads without loss.
fn range(format: Option<&str>) -> (f64, f64) {
    const JSON_SAFE: f64 = 9_007_199_254_740_991.0;
    match format {
        Some("int32") => (f64::from(i32::MIN), f64::from(i32::MAX)),
        Some("uint32") => (0.0, f64::from(u32::MAX)),
        Some("uint64") => (0.0, JSON_SAFE),
        Some("uint8") => (0.0, f64::from(u8::MAX)),
        Some("uint16") => (0.0, f64::from(u16::MAX)),
        _ => (-JSON_SAFE, JSON_SAFE),
    }
}

/// Fills in missing `minimum`/`maximum` of every `type: integer` schema under `schema`.
pub fn bound_integers(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("integer") {
                let (min, max) = range(map.get("format").and_then(Value::as_str));
                map.entry("minimum").or_insert_with(|| json!(min));
                map.entry("maximum").or_insert_with(|| json!(max));
            }
            for value in map.values_mut() {
                bound_integers(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(bound_integers),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_bounds_follow_the_format_and_set_ones_stay() {
        let mut schema = json!({"properties": {
            "a": {"type": "integer", "format": "uint32", "minimum": 1.0},
            "b": {"type": "integer", "format": "int32"},
            "c": {"type": "array", "items": {"type": "integer", "format": "int64"}},
            "d": {"type": "string"},
        }});
        bound_integers(&mut schema);
        assert_eq!(schema["properties"]["a"]["minimum"], json!(1.0));
        assert_eq!(schema["properties"]["a"]["maximum"], json!(4294967295.0));
        assert_eq!(schema["properties"]["b"]["minimum"], json!(-2147483648.0));
        assert_eq!(
            schema["properties"]["c"]["items"]["maximum"],
            json!(9007199254740991.0)
        );
        assert!(schema["properties"]["d"].get("maximum").is_none());
    }
}
