//! A digest of a JSON value, to tell whether it is the one last written without keeping it: as a
//! `Value`, a status part or a record takes kilobytes (every small JSON map is a tree node of its
//! own); its digest takes eight bytes.
use std::hash::Hasher;

use serde_json::Value;

/// Equal values give equal digests (maps serialise with their keys in order).
pub fn digest(value: &Value) -> u64 {
    struct Digest(std::collections::hash_map::DefaultHasher);
    impl std::io::Write for Digest {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.write(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut d = Digest(Default::default());
    let _ = serde_json::to_writer(&mut d, value);
    d.0.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_digest_tells_values_apart_and_not_key_order() {
        let a = json!({"clusters": [{"cluster": "m1", "health": {"state": "Healthy"}}], "conditions": []});
        let same = serde_json::from_str::<Value>(
            r#"{"conditions": [], "clusters": [{"health": {"state": "Healthy"}, "cluster": "m1"}]}"#,
        )
        .expect("json");
        let other = json!({"clusters": [{"cluster": "m1", "health": {"state": "Progressing"}}], "conditions": []});
        assert_eq!(digest(&a), digest(&same));
        assert_ne!(digest(&a), digest(&other));
    }
}
