//! The per-member agent: probes the member on its interval, turns results into Ready/NotReady
//! transitions, and is the only writer of its MemberCluster's status.
//!
//! Status is written on every transition and otherwise at most every [`STATUS_REFRESH`], so a
//! healthy federation does not write status twice a second per member.
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource};
use serde_json::json;
use tokio::time::MissedTickBehavior;

use flotilla_api::member_cluster::{MemberCluster, MemberClusterStatus, ProbeSettings};

use super::credentials::{CredentialsProblem, MemberClients};
use super::health::{HealthState, HealthTracker, ProbeOutcome, Transition};
use super::identity;
use super::probe::probe_readyz;
use super::renewal::{self, Renewal};
use crate::conditions::{NewCondition, set_condition};
use crate::context::Context;

/// How often a steady member's lastProbeTime and latency are written to status.
pub const STATUS_REFRESH: Duration = Duration::from_secs(30);

/// What an agent works from.
pub struct AgentSpec {
    pub member: MemberCluster,
    pub credentials: Result<MemberClients, CredentialsProblem>,
    /// Set when the credentials are a ServiceAccount token that expires.
    pub renewal: Option<Renewal>,
}

/// Runs until aborted.
pub async fn run(ctx: Arc<Context>, spec: AgentSpec) {
    let name = spec.member.metadata.name.clone().unwrap_or_default();
    let mut writer = StatusWriter::new(&ctx, &spec.member);
    match spec.credentials {
        Err(problem) => credentials_unusable(&ctx, &name, &spec.member, &mut writer, problem).await,
        Ok(clients) => {
            let probe = probe_loop(&ctx, &name, &spec.member, clients.probe, &mut writer);
            match spec.renewal {
                Some(renewal) => {
                    let renew =
                        renewal::run(ctx.clone(), spec.member.clone(), clients.work, renewal);
                    tokio::join!(probe, renew);
                }
                None => probe.await,
            }
        }
    }
}

async fn credentials_unusable(
    ctx: &Context,
    name: &str,
    member: &MemberCluster,
    writer: &mut StatusWriter,
    problem: CredentialsProblem,
) {
    ctx.registry
        .set_health(name, HealthState::NotReady, Timestamp::now());
    ctx.metrics.member_health(name, false, "NotReady");
    writer.condition(
        "CredentialsValid",
        false,
        problem.reason,
        problem.message.clone(),
    );
    writer.condition("Ready", false, problem.reason, problem.message.clone());
    writer.write(ctx).await;
    ctx.event(
        &member.object_ref(&()),
        true,
        problem.reason,
        "ReadCredentials",
        problem.message,
    )
    .await;
    // Nothing to probe until the reconciler replaces this agent with one that has credentials.
    futures::future::pending::<()>().await;
}

async fn probe_loop(
    ctx: &Context,
    name: &str,
    member: &MemberCluster,
    client: Client,
    writer: &mut StatusWriter,
) {
    // Clamped: an object stored before the schema bounded these keeps its values in etcd.
    let settings: ProbeSettings = member.spec.probe.clamped();
    if settings != member.spec.probe {
        tracing::warn!(
            member = name,
            "spec.probe is outside the supported bounds; probing with the nearest supported values"
        );
    }
    let timeout = Duration::from_millis(u64::from(settings.timeout_milliseconds));
    let period = Duration::from_millis(u64::from(settings.period_milliseconds));
    // Continue from the health the registry already holds, so replacing an agent (new
    // credentials, new probe settings) does not make placements flap or repeat events.
    let current = ctx
        .registry
        .get(name)
        .map(|m| m.health)
        .unwrap_or(HealthState::Unknown);
    let mut tracker = HealthTracker::starting_at(
        settings.failure_threshold,
        settings.success_threshold,
        current,
    );
    writer.condition(
        "CredentialsValid",
        true,
        "KubeconfigLoaded",
        "the kubeconfig yields a client".into(),
    );

    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_write: Option<Instant> = None;
    let mut version_known = false;
    let created = member
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(Timestamp::MAX, |t| t.0);
    let mut cluster_uid: Option<String> = None;
    loop {
        ticker.tick().await;
        let (mut outcome, latency) = probe_readyz(&client, timeout).await;
        let now = Timestamp::now();
        // One cluster, one member: the cluster's identity is read before it can be Ready.
        if outcome == ProbeOutcome::Healthy && cluster_uid.is_none() {
            match identity::read(&client, timeout).await {
                Ok(uid) => cluster_uid = Some(uid),
                Err(message) => {
                    outcome = ProbeOutcome::Failed {
                        reason: "IdentityUnknown",
                        message,
                    }
                }
            }
        }
        if let Some(uid) = &cluster_uid
            && let Err(holder) = ctx.registry.claim(name, uid, created)
        {
            tracker = HealthTracker::starting_at(
                settings.failure_threshold,
                settings.success_threshold,
                HealthState::NotReady,
            );
            if writer.reason_of("Ready") != Some("DuplicateCluster") {
                let message = identity::duplicate_message(name, &holder);
                writer.condition("Ready", false, "DuplicateCluster", message.clone());
                writer.write(ctx).await;
                last_write = Some(Instant::now());
                ctx.metrics.member_health(name, false, "NotReady");
                ctx.event(
                    &member.object_ref(&()),
                    true,
                    "DuplicateCluster",
                    "Probe",
                    message,
                )
                .await;
            }
            continue;
        }
        if writer.reason_of("Ready") == Some("DuplicateCluster") {
            // The holder is gone: this member is probed afresh.
            writer.condition("Ready", false, "ProbeFailed", "probing again".into());
        }
        writer.status.last_probe_time = Some(Time(now));
        if outcome == ProbeOutcome::Healthy {
            ctx.metrics.member_probed(name, latency);
            writer.status.probe_latency_milliseconds =
                Some(u32::try_from(latency.as_millis()).unwrap_or(u32::MAX));
            if !version_known && let Ok(info) = client.apiserver_version().await {
                writer.status.kubernetes_version = Some(info.git_version);
                version_known = true;
            }
        }
        let transition = tracker.record(&outcome);
        if let Some(t) = &transition {
            report_transition(ctx, name, member, writer, t, now).await;
        }
        // While NotReady, the condition names the latest cause (new credentials may fail in a
        // new way without any transition).
        let cause_changed = match (&outcome, tracker.state()) {
            (ProbeOutcome::Failed { reason, message }, HealthState::NotReady)
                if writer.reason_of("Ready") != Some(*reason) =>
            {
                writer.condition("Ready", false, reason, message.clone());
                true
            }
            _ => false,
        };
        let due = last_write.is_none_or(|w| w.elapsed() >= STATUS_REFRESH);
        if (transition.is_some() || cause_changed || due) && tracker.state() != HealthState::Unknown
        {
            writer.write(ctx).await;
            last_write = Some(Instant::now());
        }
    }
}

async fn report_transition(
    ctx: &Context,
    name: &str,
    member: &MemberCluster,
    writer: &mut StatusWriter,
    t: &Transition,
    now: Timestamp,
) {
    let ready = t.to == HealthState::Ready;
    // A member first concluded Ready by this process that its status already showed Ready has
    // been Ready since that condition's transition: keep that time, so a restart of the operator
    // does not restart failback stabilization periods.
    let since = match (
        t.from,
        ready,
        crate::conditions::find(&writer.status.conditions, "Ready"),
    ) {
        (HealthState::Unknown, true, Some(c)) if c.status == "True" => c.last_transition_time.0,
        _ => now,
    };
    ctx.registry.set_health(name, t.to, since);
    ctx.metrics
        .member_health(name, ready, if ready { "Ready" } else { "NotReady" });
    writer.condition("Ready", ready, t.reason, t.message.clone());
    tracing::info!(member = name, ready, reason = t.reason, message = %t.message, "member health changed");
    // Only real changes of state are events: the first probe of a member seen healthy at start-up is not.
    if t.from != HealthState::Unknown || !ready {
        let (reason, note) = if ready {
            (
                "MemberReady",
                format!("member {name} is Ready: {}", t.message),
            )
        } else {
            (
                "MemberNotReady",
                format!("member {name} is NotReady ({}): {}", t.reason, t.message),
            )
        };
        ctx.event(&member.object_ref(&()), !ready, reason, "Probe", note)
            .await;
    }
}

/// Keeps the status the agent owns and writes it as one merge patch.
struct StatusWriter {
    name: String,
    generation: Option<i64>,
    status: MemberClusterStatus,
}

impl StatusWriter {
    fn new(_ctx: &Context, member: &MemberCluster) -> Self {
        Self {
            name: member.metadata.name.clone().unwrap_or_default(),
            generation: member.metadata.generation,
            status: member.status.clone().unwrap_or_default(),
        }
    }

    fn reason_of(&self, type_: &str) -> Option<&str> {
        crate::conditions::find(&self.status.conditions, type_).map(|c| c.reason.as_str())
    }

    fn condition(&mut self, type_: &str, status: bool, reason: &str, message: String) {
        set_condition(
            &mut self.status.conditions,
            NewCondition {
                type_,
                status,
                reason,
                message,
                observed_generation: self.generation,
            },
            Time(Timestamp::now()),
        );
    }

    async fn write(&mut self, ctx: &Context) {
        self.status.observed_generation = self.generation;
        let api: Api<MemberCluster> = Api::all(ctx.host.clone());
        let patch = json!({ "status": self.status });
        let params = PatchParams::default();
        let Ok(written) = ctx
            .lease
            .fence(api.patch_status(&self.name, &params, &Patch::Merge(&patch)))
            .await
        else {
            return;
        };
        match written {
            Ok(_) => ctx
                .metrics
                .status_written("membercluster", patch.to_string().len()),
            // The next transition or refresh writes again; a member status is never worth a crash.
            Err(e) => {
                tracing::warn!(member = %self.name, error = %e, "could not write MemberCluster status")
            }
        }
    }
}
