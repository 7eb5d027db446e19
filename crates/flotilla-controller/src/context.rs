//! What every reconciler shares: the host client, the member registry, metrics, events.
use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::lease_guard::LeaseGuard;
use crate::members::credentials::ClientTimeouts;
use crate::members::kubeconfig_policy::PolicyOptions;
use crate::members::registry::MemberRegistry;
use crate::metrics::Metrics;

/// Shared state of the controllers.
pub struct Context {
    /// The host cluster.
    pub host: Client,
    /// The operator's namespace: member credential Secrets live here.
    pub namespace: String,
    pub registry: MemberRegistry,
    pub metrics: Metrics,
    pub timeouts: ClientTimeouts,
    /// What member kubeconfigs may contain beyond the default (development flags).
    pub member_policy: PolicyOptions,
    /// Whether this replica may write: checked before every host and member write.
    pub lease: LeaseGuard,
    /// The kinds this operator federates (`--federated-kinds`).
    pub federated_kinds: crate::allowlist::Allowlist,
    /// When member tokens are renewed, in percent of their lifetime.
    pub token_renew_percent: u8,
    /// `--allow-adoption`: foreign member objects may be adopted without their own opt-in.
    pub allow_adoption: bool,
    /// The host's namespaces, for `MemberCluster.spec.namespaces` selectors (`None`: every
    /// namespace reads as unlabelled).
    pub host_namespaces: Option<crate::host_namespaces::HostNamespaces>,
    /// The workloads ScalingPolicies scale: their replicas are the policy's, not the engine's.
    pub scaled: crate::scaled_targets::ScaledTargets,
    recorder: Recorder,
}

impl Context {
    /// The labels of host namespace `name`, as member namespace selectors see them.
    pub fn namespace_labels(&self, name: &str) -> std::collections::BTreeMap<String, String> {
        self.host_namespaces
            .as_ref()
            .map(|n| n.labels(name))
            .unwrap_or_default()
    }

    pub fn new(
        host: Client,
        namespace: String,
        identity: String,
        metrics: Metrics,
        lease: LeaseGuard,
    ) -> Self {
        let reporter = Reporter {
            controller: "flotilla".into(),
            instance: Some(identity),
        };
        Self {
            recorder: Recorder::new(host.clone(), reporter),
            host,
            namespace,
            registry: MemberRegistry::new(),
            metrics,
            timeouts: ClientTimeouts::default(),
            member_policy: PolicyOptions::default(),
            lease,
            federated_kinds: crate::allowlist::Allowlist::default(),
            token_renew_percent: crate::members::renewal::DEFAULT_RENEW_PERCENT,
            allow_adoption: false,
            host_namespaces: None,
            scaled: crate::scaled_targets::ScaledTargets::default(),
        }
    }

    /// Publishes an Event on a host object. Failing to record an event never fails a reconcile;
    /// without the Lease the event is skipped.
    pub async fn event(
        &self,
        reference: &ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if let Ok(Err(e)) = self
            .lease
            .fence(self.recorder.publish(&event, reference))
            .await
        {
            tracing::debug!(error = %e, reason, "could not record event");
        }
    }

    /// [`Self::event`] without waiting for it: for paths where the next write matters more
    /// than the event's order (the status syncer corrects the next drift sooner).
    pub fn event_in_background(
        self: &Arc<Self>,
        reference: ObjectReference,
        warning: bool,
        reason: &'static str,
        action: &'static str,
        note: String,
    ) {
        let ctx = Arc::clone(self);
        tokio::spawn(async move {
            ctx.event(&reference, warning, reason, action, note).await;
        });
    }
}
