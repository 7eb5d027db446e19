//! Events of the ScalingPolicy controller, one per occurrence, as the HPA records
//! `SuccessfulRescale` ("New size: 6; reason: ...") on every rescale.
//!
//! The shared recorder (`Context::event`) folds repeated events with the same reason into one
//! series that keeps the first note, which would show the first size forever; rescale notes
//! differ every time, so these are created directly (`events.k8s.io/v1`, the same API and
//! permissions the recorder uses). Failing to record an event never fails a reconcile; without
//! the leader Lease it is skipped.
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};

use crate::context::Context;

/// The API's limit on a note is 1 kB.
const MAX_NOTE_BYTES: usize = 1000;

/// Creates one Event on `reference`.
pub async fn publish(
    ctx: &Context,
    reference: &ObjectReference,
    warning: bool,
    reason: &str,
    action: &str,
    note: String,
) {
    let now = jiff::Timestamp::now();
    let namespace = reference
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_string());
    let instance = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "flotilla".to_string());
    let event = Event {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}.{:x}",
                reference.name.as_deref().unwrap_or("flotilla"),
                now.as_nanosecond()
            )),
            namespace: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(now)),
        action: Some(action.to_string()),
        reason: Some(reason.to_string()),
        note: Some(truncate(note, MAX_NOTE_BYTES)),
        regarding: Some(reference.clone()),
        reporting_controller: Some("flotilla".to_string()),
        reporting_instance: Some(instance),
        type_: Some(if warning { "Warning" } else { "Normal" }.to_string()),
        ..Event::default()
    };
    let api: Api<Event> = Api::namespaced(ctx.host.clone(), &namespace);
    let params = PostParams::default();
    if let Ok(Err(e)) = ctx.lease.fence(api.create(&params, &event)).await {
        tracing::debug!(error = %e, reason, "could not record event");
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max.saturating_sub(3);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_notes_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("short".into(), 10), "short");
        let cut = truncate("é".repeat(600), MAX_NOTE_BYTES);
        assert!(cut.len() <= MAX_NOTE_BYTES && cut.ends_with("..."));
    }
}
