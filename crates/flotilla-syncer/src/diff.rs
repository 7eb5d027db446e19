//! Field-by-field comparison of a desired object with an observed one, restricted to the fields
//! the desired object sets: fields added by others (status, defaults, other controllers'
//! annotations) are not differences; a field Flotilla sets that is changed or removed is.
use serde_json::Value;

/// One field whose observed value differs from the desired one.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDiff {
    /// A JSON pointer (RFC 6901) to the field.
    pub path: String,
    /// The value Flotilla wants.
    pub desired: Value,
    /// The value found, or `None` when the field is missing.
    pub observed: Option<Value>,
}

/// Compares `observed` against the fields `desired` sets. Objects compare key by key (keys only in
/// `observed` are ignored); arrays compare element by element and must have the same length
/// (an added or removed list element changes what Flotilla applied); scalars must be equal.
/// `ignore` lists JSON pointers whose subtrees are skipped.
pub fn diff_owned_fields(desired: &Value, observed: &Value, ignore: &[String]) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    walk(
        desired,
        Some(observed),
        &mut String::new(),
        ignore,
        &mut out,
    );
    out
}

fn walk(
    desired: &Value,
    observed: Option<&Value>,
    path: &mut String,
    ignore: &[String],
    out: &mut Vec<FieldDiff>,
) {
    if ignore.iter().any(|i| i == path) {
        return;
    }
    match (desired, observed) {
        (Value::Object(want), Some(Value::Object(have))) => {
            for (key, value) in want {
                let len = path.len();
                path.push('/');
                push_escaped(path, key);
                walk(value, have.get(key), path, ignore, out);
                path.truncate(len);
            }
        }
        (Value::Array(want), Some(Value::Array(have))) if want.len() == have.len() => {
            for (i, value) in want.iter().enumerate() {
                let len = path.len();
                path.push('/');
                path.push_str(&i.to_string());
                walk(value, have.get(i), path, ignore, out);
                path.truncate(len);
            }
        }
        (want, have) if !equal(want, have) => out.push(FieldDiff {
            path: if path.is_empty() {
                "/".into()
            } else {
                path.clone()
            },
            desired: want.clone(),
            observed: have.cloned(),
        }),
        _ => {}
    }
}

/// Equal as Kubernetes would store them: numbers compare by value (`8080` and `8080.0`).
fn equal(want: &Value, have: Option<&Value>) -> bool {
    match (want, have) {
        (Value::Number(a), Some(Value::Number(b))) => a.as_f64() == b.as_f64(),
        (a, Some(b)) => a == b,
        (_, None) => false,
    }
}

fn push_escaped(path: &mut String, key: &str) {
    for c in key.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_only_in_the_observed_object_are_not_drift() {
        let desired = json!({"spec": {"rules": [{"host": "a"}]}});
        let observed = json!({"spec": {"rules": [{"host": "a", "http": {}}], "ingressClassName": "x"}, "status": {}});
        assert!(diff_owned_fields(&desired, &observed, &[]).is_empty());
    }

    #[test]
    fn a_changed_value_is_reported_with_both_values() {
        let desired = json!({"spec": {"rules": [{"host": "a"}]}});
        let observed = json!({"spec": {"rules": [{"host": "b"}]}});
        let d = diff_owned_fields(&desired, &observed, &[]);
        assert_eq!(
            d,
            vec![FieldDiff {
                path: "/spec/rules/0/host".into(),
                desired: json!("a"),
                observed: Some(json!("b")),
            }]
        );
    }

    #[test]
    fn a_removed_field_is_reported_as_missing() {
        let desired = json!({"metadata": {"annotations": {"team/owner": "x"}}});
        let observed = json!({"metadata": {"annotations": {}}});
        let d = diff_owned_fields(&desired, &observed, &[]);
        assert_eq!(d[0].path, "/metadata/annotations/team~1owner");
        assert_eq!(d[0].observed, None);
    }

    #[test]
    fn a_list_of_another_length_is_one_difference() {
        let desired = json!({"spec": {"rules": [{"host": "a"}]}});
        let observed = json!({"spec": {"rules": [{"host": "a"}, {"host": "b"}]}});
        let d = diff_owned_fields(&desired, &observed, &[]);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].path, "/spec/rules");
    }

    #[test]
    fn ignored_paths_are_skipped() {
        let desired = json!({"metadata": {"annotations": {"a": "1", "b": "2"}}});
        let observed = json!({"metadata": {"annotations": {"a": "x", "b": "y"}}});
        let d = diff_owned_fields(
            &desired,
            &observed,
            &["/metadata/annotations/a".to_string()],
        );
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].path, "/metadata/annotations/b");
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(diff_owned_fields(&json!({"n": 8080}), &json!({"n": 8080.0}), &[]).is_empty());
    }
}
