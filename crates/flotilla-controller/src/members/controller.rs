//! The MemberCluster controller: keeps the registry's view of each member (labels, taints,
//! credentials) current and runs one agent per member that probes it and writes its status.
//!
//! It replaces a member's agent when the credentials Secret or the spec changes, and forgets the
//! member when its MemberCluster is deleted (via a finalizer, so the agent never outlives it).
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use tokio::task::JoinHandle;

use flotilla_api::labels::{REGION_LABEL, ZONE_LABEL};
use flotilla_api::member_cluster::MemberCluster;

use super::agent::{self, AgentSpec};
use super::credentials::{clients_from_secret, credentials_selector, read_secret, renewal_of};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::finalizer;
use crate::placement_input::namespace_access;

const CONTROLLER: &str = "membercluster";
/// How soon a member whose Secret is missing, unlabelled or unreadable is looked at again.
const SECRET_RETRY: Duration = Duration::from_secs(5);

/// The running agents, by member name, with what they were started from.
#[derive(Default)]
pub struct Agents {
    running: Mutex<HashMap<String, Agent>>,
}

/// What an agent was started from: a new Secret version, a different reason for having none, or a
/// new generation replaces it.
type AgentKey = (Result<Option<String>, &'static str>, Option<i64>);

struct Agent {
    /// Secret resourceVersion (or why the Secret could not be read) and object generation the
    /// agent was started with.
    key: AgentKey,
    handle: JoinHandle<()>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

impl Agents {
    fn key_of(&self, name: &str) -> Option<AgentKey> {
        self.lock().get(name).map(|a| a.key.clone())
    }

    fn replace(&self, name: &str, agent: Agent) {
        self.lock().insert(name.to_string(), agent);
    }

    fn stop(&self, name: &str) {
        self.lock().remove(name);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Agent>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct State {
    ctx: Arc<Context>,
    agents: Agents,
}

/// The labels placement selects on: the object's labels plus region and zone.
pub fn placement_labels(member: &MemberCluster) -> BTreeMap<String, String> {
    let mut labels = member.labels().clone();
    if let Some(region) = &member.spec.region {
        labels.insert(REGION_LABEL.to_string(), region.clone());
    }
    if let Some(zone) = &member.spec.zone {
        labels.insert(ZONE_LABEL.to_string(), zone.clone());
    }
    labels
}

async fn reconcile(member: Arc<MemberCluster>, state: Arc<State>) -> Result<Action> {
    let start = Instant::now();
    let ctx = &state.ctx;
    let name = member.name_any();
    let api: Api<MemberCluster> = Api::all(ctx.host.clone());

    if member.meta().deletion_timestamp.is_some() {
        state.agents.stop(&name);
        ctx.registry.remove(&name);
        ctx.metrics.forget_member(&name);
        if finalizer::has_finalizer(member.as_ref()) {
            finalizer::remove(&ctx.lease, &api, member.as_ref())
                .await
                .map_err(Error::HostApi)?;
        }
        tracing::info!(member = %name, "member removed");
        return Ok(Action::await_change());
    }
    if !finalizer::has_finalizer(member.as_ref()) {
        finalizer::add(&ctx.lease, &api, member.as_ref())
            .await
            .map_err(Error::HostApi)?;
    }

    ctx.registry
        .upsert(&name, placement_labels(&member), member.spec.taints.clone());
    let (namespaces, problem) = namespace_access(member.spec.namespaces.as_ref());
    if let Some(problem) = problem {
        // Fail closed: the names still admit, the selector admits nothing until it is fixed.
        tracing::warn!(member = %name, %problem, "spec.namespaces.selector is invalid; it admits no namespace");
    }
    ctx.registry.set_namespaces(&name, namespaces);

    let secret_ref = &member.spec.secret_ref;
    let secret = read_secret(&ctx.host, &ctx.namespace, secret_ref).await;
    let key: AgentKey = (
        secret
            .as_ref()
            .map(|s| s.metadata.resource_version.clone())
            .map_err(|problem| problem.reason),
        member.metadata.generation,
    );
    // Only labelled Secrets are watched, so a Secret created without the label, or labelled
    // later than the member was created, triggers nothing: look again soon while there is none.
    let next_look = if secret.is_ok() {
        Duration::from_secs(300)
    } else {
        SECRET_RETRY
    };
    if state.agents.key_of(&name).as_ref() != Some(&key) {
        let (credentials, renewal) = match secret {
            Ok(secret) => (
                clients_from_secret(&secret, secret_ref, ctx.timeouts, ctx.member_policy)
                    .map(|(clients, _server)| clients),
                renewal_of(&secret, secret_ref),
            ),
            Err(problem) => (Err(problem), None),
        };
        ctx.registry.set_client(&name, credentials.as_ref().ok());
        let spec = AgentSpec {
            member: member.as_ref().clone(),
            credentials,
            renewal,
        };
        let handle = tokio::spawn(agent::run(ctx.clone(), spec));
        state.agents.replace(&name, Agent { key, handle });
        tracing::info!(member = %name, "member agent (re)started");
    }
    ctx.metrics.reconciled(CONTROLLER, start.elapsed());
    Ok(Action::requeue(next_look))
}

fn error_policy(_member: Arc<MemberCluster>, error: &Error, state: Arc<State>) -> Action {
    state
        .ctx
        .metrics
        .reconcile_failed(CONTROLLER, error.metric_label());
    tracing::warn!(%error, "membercluster reconcile failed");
    Action::requeue(Duration::from_secs(2))
}

/// Marks the registry synced once every MemberCluster that exists at start-up has an entry.
async fn mark_synced_when_complete(ctx: Arc<Context>) {
    let api: Api<MemberCluster> = Api::all(ctx.host.clone());
    let names: Vec<String> = loop {
        match api.list(&kube::api::ListParams::default()).await {
            Ok(list) => {
                break list
                    .items
                    .iter()
                    .filter(|m| m.meta().deletion_timestamp.is_none())
                    .map(|m| m.name_any())
                    .collect();
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot list MemberClusters; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    while !names.iter().all(|n| ctx.registry.get(n).is_some()) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::debug!(members = names.len(), "member registry complete");
    ctx.registry.mark_synced();
}

/// Runs the MemberCluster controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let members: Api<MemberCluster> = Api::all(ctx.host.clone());
    let secrets: Api<Secret> = Api::namespaced(ctx.host.clone(), &ctx.namespace);
    let controller = Controller::new(members, watcher::Config::default());
    let store = controller.store();
    tokio::spawn(mark_synced_when_complete(ctx.clone()));
    let state = Arc::new(State {
        ctx,
        agents: Agents::default(),
    });
    controller
        // A changed or new credentials Secret re-reconciles every member that reads it. Only
        // labelled Secrets are watched: the operator has no business caching the others.
        .watches(
            secrets,
            watcher::Config::default().labels(&credentials_selector()),
            move |secret: Secret| {
                let name = secret.name_any();
                store
                    .state()
                    .into_iter()
                    .filter(move |m| m.spec.secret_ref.name == name)
                    .map(|m| ObjectRef::from_obj(m.as_ref()))
            },
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, state)
        .for_each(|_| futures::future::ready(()))
        .await;
}
