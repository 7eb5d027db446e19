//! Who changed a field: the field manager whose `managedFields` entry owns it.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use serde_json::Value;

/// The manager, other than `ours`, that owns the field at `pointer` (a JSON pointer), or owns the
/// closest enclosing field (lists such as Ingress rules are atomic: owned as a whole). Among
/// several, the most recent writer wins. `None` when no other manager owns it (for example a
/// field that was removed: nobody owns a missing field).
pub fn manager_of(entries: &[ManagedFieldsEntry], pointer: &str, ours: &str) -> Option<String> {
    let segments: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    entries
        .iter()
        .filter(|e| e.manager.as_deref().is_some_and(|m| m != ours))
        .filter_map(|e| {
            let fields = e.fields_v1.as_ref()?;
            let depth = owned_depth(&fields.0, &segments)?;
            Some((depth, e.time.as_ref().map(|t| t.0), e.manager.clone()?))
        })
        // Deepest ownership first (the most specific owner), then the latest write.
        .max_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)))
        .map(|(_, _, m)| m)
}

/// How deep into `segments` the fieldsV1 tree follows the path; `None` if it does not own any
/// prefix of it (at least the first segment).
fn owned_depth(tree: &Value, segments: &[String]) -> Option<usize> {
    let mut node = tree;
    let mut depth = 0;
    for segment in segments {
        match node.get(format!("f:{segment}")) {
            Some(child) => {
                node = child;
                depth += 1;
            }
            // A list element (`i:`/`k:`/`v:` keys) or a leaf: ownership of the enclosing field.
            None => break,
        }
    }
    (depth > 0).then_some(depth)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, Time};
    use serde_json::json;

    fn entry(manager: &str, secs: i64, fields: Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Update".into()),
            time: Some(Time(jiff::Timestamp::from_second(secs).expect("time"))),
            fields_v1: Some(FieldsV1(fields)),
            fields_type: Some("FieldsV1".into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_owner_of_an_atomic_list_is_the_owner_of_its_elements() {
        let entries = vec![
            entry("flotilla", 1, json!({"f:spec": {"f:rules": {}}})),
            entry("kubectl-edit", 5, json!({"f:spec": {"f:rules": {}}})),
        ];
        assert_eq!(
            manager_of(&entries, "/spec/rules/0/host", "flotilla").as_deref(),
            Some("kubectl-edit")
        );
    }

    #[test]
    fn the_most_specific_then_latest_owner_wins() {
        let entries = vec![
            entry("a", 9, json!({"f:metadata": {}})),
            entry(
                "b",
                1,
                json!({"f:metadata": {"f:annotations": {"f:team": {}}}}),
            ),
        ];
        assert_eq!(
            manager_of(&entries, "/metadata/annotations/team", "flotilla").as_deref(),
            Some("b")
        );
    }

    #[test]
    fn escaped_keys_are_matched() {
        let entries = vec![entry(
            "ed",
            1,
            json!({"f:metadata": {"f:labels": {"f:app.kubernetes.io/name": {}}}}),
        )];
        assert_eq!(
            manager_of(
                &entries,
                "/metadata/labels/app.kubernetes.io~1name",
                "flotilla"
            )
            .as_deref(),
            Some("ed")
        );
    }

    #[test]
    fn our_own_entries_and_unowned_paths_give_none() {
        let entries = vec![entry("flotilla", 1, json!({"f:spec": {"f:rules": {}}}))];
        assert_eq!(manager_of(&entries, "/spec/rules/0/host", "flotilla"), None);
        let entries = vec![entry("other", 1, json!({"f:status": {}}))];
        assert_eq!(manager_of(&entries, "/spec/rules", "flotilla"), None);
    }
}
