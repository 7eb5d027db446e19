//! Replicas across clusters for kinds with `spec.replicas`: `Duplicated` leaves the template's
//! count in every member; `Divided` makes it the total, split by the placement engine's
//! division (weights and per-cluster bounds), so a failed member's share moves to the others
//! and back with the placement. Pure.
use serde_json::Value;

use flotilla_api::federated_object::ReplicaMode;
use flotilla_placement::ReplicaRequest;

use super::Propagated;

/// The division to ask the placement engine for, if the object divides its replicas.
pub fn request<K: Propagated>(obj: &K, template: &Value) -> Result<Option<ReplicaRequest>, String> {
    if let Some(problem) = obj.replica_spread().and_then(|s| {
        crate::placement_input::distribution_problem("replicas.distribution", &s.distribution)
    }) {
        return Err(problem);
    }
    let Some(spread) = obj
        .replica_spread()
        .filter(|s| s.mode == ReplicaMode::Divided)
    else {
        return Ok(None);
    };
    let total = template
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .ok_or("replicas.mode Divided needs a template with an integer spec.replicas (the total to divide)")?;
    let total = i32::try_from(total)
        .ok()
        .filter(|t| *t >= 0)
        .ok_or("spec.replicas must be between 0 and 2147483647")?;
    Ok(Some(crate::placement_input::replica_request(
        &spread.distribution,
        total,
    )))
}

/// The template for one cluster: its share of divided replicas, if any.
pub fn for_cluster(template: &Value, replicas: Option<i32>) -> std::borrow::Cow<'_, Value> {
    match replicas {
        Some(n) => {
            let mut t = template.clone();
            if let Some(spec) = t.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("replicas".into(), n.into());
            }
            std::borrow::Cow::Owned(t)
        }
        None => std::borrow::Cow::Borrowed(template),
    }
}

/// The template for a copy whose replicas a ScalingPolicy owns: without `spec.replicas` once the
/// policy's writes own the field in the member (the engine's apply then lets go of it), the
/// member's own count until then (applying no count would let the server reset it to its
/// default before the policy wrote one), and the engine's count for a copy not created yet.
pub fn left_to_scaler<'a>(
    template: std::borrow::Cow<'a, Value>,
    seen: Option<&super::origin::CopyMeta>,
) -> std::borrow::Cow<'a, Value> {
    let Some(scale) = seen.and_then(|s| s.scale.as_deref()) else {
        return template;
    };
    let mut t = template.into_owned();
    if let Some(spec) = t.get_mut("spec").and_then(Value::as_object_mut) {
        if scale.by_scaler {
            spec.remove("replicas");
        } else {
            spec.insert("replicas".into(), scale.replicas.into());
        }
    }
    std::borrow::Cow::Owned(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_clusters_share_replaces_the_template_count() {
        let t = json!({"spec": {"replicas": 6, "template": {}}});
        assert_eq!(for_cluster(&t, Some(2))["spec"]["replicas"], 2);
        assert_eq!(for_cluster(&t, None)["spec"]["replicas"], 6);
    }

    #[test]
    fn a_scaled_copy_keeps_the_members_count_until_the_policy_owns_it() {
        let t = json!({"spec": {"replicas": 6, "template": {}}});
        let mut seen = crate::propagation::origin::CopyMeta::of(&json!({
            "metadata": {"name": "web", "labels": {"app.kubernetes.io/managed-by": "flotilla"}},
            "spec": {"replicas": 4}}))
        .expect("a copy");
        let keep = left_to_scaler(std::borrow::Cow::Borrowed(&t), Some(&seen));
        assert_eq!(keep["spec"]["replicas"], 4);
        if let Some(scale) = seen.scale.as_mut() {
            scale.by_scaler = true;
        }
        let omit = left_to_scaler(std::borrow::Cow::Borrowed(&t), Some(&seen));
        assert!(omit["spec"].get("replicas").is_none());
        assert!(omit["spec"].get("template").is_some());
        let new_copy = left_to_scaler(std::borrow::Cow::Borrowed(&t), None);
        assert_eq!(new_copy["spec"]["replicas"], 6);
    }
}
