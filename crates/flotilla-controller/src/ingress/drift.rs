//! The status syncer's I/O: every change a member watch sees is compared with what Flotilla
//! applied; drift is reported on the host object (each member's entry written under a field
//! manager of its own, so one cluster's drift writes one entry, whatever the cluster count) and
//! corrected at once under `Enforce`. Load-balancer addresses of the copies are collected the
//! same way. Nothing is written when nothing changed.
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use flotilla_api::FederatedIngress;
use flotilla_api::federated_ingress::{CopyState, DriftStatus, LoadBalancerAddress};
use flotilla_api::labels::{FIELD_MANAGER, ORIGIN_NAME, ORIGIN_NAMESPACE};
use flotilla_api::policies::DriftMode;
use flotilla_syncer::{DriftInput, drift_status, same_drift};

use super::copies::{ApplyOutcome, apply_copy};
use super::desired::{ORIGIN_GENERATION_ANNOTATION, Origin, desired_copy};
use super::index::{CopyEvent, CopyIndex};
use crate::conditions::{NewCondition, set_condition};
use crate::context::Context;

const KIND: &str = "federatedingress";
/// The field manager of the Drifted condition.
const CONDITION_MANAGER: &str = "flotilla-drift";

/// The field manager of one member's status entry.
pub fn entry_manager(member: &str) -> String {
    format!("flotilla-syncer.{member}")
}

/// What was last written for one (object, member).
#[derive(Clone, Default, PartialEq)]
struct Written {
    drift: Option<DriftStatus>,
    load_balancer: Vec<LoadBalancerAddress>,
}

struct Syncer {
    ctx: Arc<Context>,
    objects: Store<FederatedIngress>,
    copies: Arc<CopyIndex>,
    /// Keyed by (namespace, name, member).
    written: HashMap<(String, String, String), Written>,
    /// The Drifted condition last written, by (namespace, name).
    drifted: HashMap<(String, String), (bool, String)>,
}

/// Runs until the index closes. `rechecks` carries host objects whose status the controller has
/// just written (with that status): a cluster newly selected or marked applied may hold a copy
/// whose events came too early to be judged.
pub async fn run(
    ctx: Arc<Context>,
    objects: Store<FederatedIngress>,
    copies: Arc<CopyIndex>,
    mut events: mpsc::UnboundedReceiver<CopyEvent>,
    mut rechecks: mpsc::UnboundedReceiver<Arc<FederatedIngress>>,
) {
    crate::store::wait_until_listed(&objects).await;
    let mut syncer = Syncer {
        ctx,
        objects,
        copies,
        written: HashMap::new(),
        drifted: HashMap::new(),
    };
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(CopyEvent::Applied { member, copy }) => {
                    syncer.observe_copy(&member, origin_of(&copy), Some(copy)).await
                }
                Some(CopyEvent::Deleted { member, copy }) => {
                    syncer.observe_copy(&member, origin_of(&copy), None).await
                }
                Some(CopyEvent::Relisted { member }) => syncer.relisted(&member).await,
                None => return,
            },
            Some(fi) = rechecks.recv() => syncer.recheck(fi).await,
        }
    }
}

fn origin_of(copy: &Ingress) -> Option<(String, String)> {
    let a = copy.metadata.annotations.as_ref()?;
    Some((
        a.get(ORIGIN_NAMESPACE)?.clone(),
        a.get(ORIGIN_NAME)?.clone(),
    ))
}

impl Syncer {
    /// After a member's watch listed afresh (start-up, reconnect, member back): copies deleted
    /// while nobody watched have no Delete event; find them from what status says was applied.
    async fn relisted(&mut self, member: &str) {
        let objects = self.objects.state();
        for fi in objects {
            let placed = fi.status.as_ref().is_some_and(|s| {
                s.clusters
                    .iter()
                    .any(|c| c.cluster == member && c.state == CopyState::Applied)
            });
            let Some(origin) = Origin::of(&fi) else {
                continue;
            };
            if placed
                && self.copies.is_listed(member)
                && self.copies.copy(member, &origin).is_none()
            {
                self.observe(member, fi.clone(), None).await;
            }
        }
    }

    /// The controller wrote `fi`'s status: judge every copy the members' watches already see.
    /// (Missing copies are reported by Delete events and relists, not here: a copy applied a
    /// moment ago may not have reached the watch yet.)
    async fn recheck(&mut self, fi: Arc<FederatedIngress>) {
        let Some(origin) = Origin::of(&fi) else {
            return;
        };
        let selected = fi
            .status
            .as_ref()
            .and_then(|s| s.placement.as_ref())
            .map(|p| p.selected.clone())
            .unwrap_or_default();
        for member in selected {
            if let Some(copy) = self.copies.copy(&member, &origin) {
                self.observe(&member, fi.clone(), Some(copy)).await;
            }
        }
    }

    /// One copy changed (`Some`) or disappeared (`None`) in `member`.
    async fn observe_copy(
        &mut self,
        member: &str,
        origin: Option<(String, String)>,
        copy: Option<Arc<Ingress>>,
    ) {
        let Some((namespace, name)) = origin else {
            return;
        };
        let Some(fi) = self.objects.get(&ObjectRef::new(&name).within(&namespace)) else {
            return; // The host object is gone: the sweeper's business.
        };
        self.observe(member, fi, copy).await;
    }

    /// Judges one member's copy of `fi`, whose status says where it is placed and applied.
    async fn observe(
        &mut self,
        member: &str,
        fi: Arc<FederatedIngress>,
        copy: Option<Arc<Ingress>>,
    ) {
        let (namespace, name) = (fi.namespace().unwrap_or_default(), fi.name_any());
        if fi.meta().deletion_timestamp.is_some() {
            return;
        }
        let Some(origin) = Origin::of(&fi) else {
            return;
        };
        let status = fi.status.clone().unwrap_or_default();
        let selected = status
            .placement
            .as_ref()
            .is_some_and(|p| p.selected.iter().any(|c| c == member));
        let entry = status.clusters.iter().find(|c| c.cluster == member);
        let key = (namespace.clone(), name.clone(), member.to_string());
        tracing::debug!(member, object = %name, selected, deleted = copy.is_none(), "drift: copy event");
        if !selected {
            // Pruned or never placed here: nothing to report for this member any more.
            if (entry.is_some_and(|e| e.drift.is_some() || !e.load_balancer.is_empty())
                || self.written.contains_key(&key))
                && self.write_entry(&fi, member, &Written::default()).await
            {
                self.written.remove(&key);
            }
            return;
        }
        // Judge only a copy applied from the object's current generation: otherwise the
        // controller has not applied it yet (or this view is behind) and will.
        let generation = fi.metadata.generation;
        // A copy kept while its member was unreachable was applied at this generation too (the
        // controller may not have marked it Applied again when the member's relist arrives).
        let applied_now = entry.is_some_and(|e| {
            matches!(e.state, CopyState::Applied | CopyState::Unreachable)
                && e.applied_generation == generation
        });
        if !applied_now {
            tracing::debug!(member, object = %name, state = ?entry.map(|e| e.state), applied = ?entry.and_then(|e| e.applied_generation), ?generation, "drift: copy not applied at this generation yet");
            return;
        }
        if let Some(c) = &copy {
            let copy_generation = c
                .annotations()
                .get(ORIGIN_GENERATION_ANNOTATION)
                .and_then(|g| g.parse::<i64>().ok());
            if copy_generation != generation {
                tracing::debug!(member, object = %name, ?copy_generation, ?generation, "drift: copy from another generation");
                return;
            }
        }
        let Ok(desired) = desired_copy(&fi, &origin, member) else {
            return;
        };
        let observed = copy
            .as_ref()
            .and_then(|c| serde_json::to_value(c.as_ref()).ok());
        let before = self.written.get(&key).cloned().unwrap_or_else(|| Written {
            drift: entry.and_then(|e| e.drift.clone()),
            load_balancer: entry.map(|e| e.load_balancer.clone()).unwrap_or_default(),
        });
        let now = Time(jiff::Timestamp::now());
        let managed_fields = copy
            .as_ref()
            .and_then(|c| c.metadata.managed_fields.clone())
            .unwrap_or_default();
        let mut drift = drift_status(&DriftInput {
            desired: &desired,
            observed: observed.as_ref(),
            managed_fields: &managed_fields,
            ignore: &fi.spec.drift.ignore_paths,
            field_manager: FIELD_MANAGER,
            previous: before.drift.as_ref(),
            now: now.clone(),
        });
        let drifted_now = drift
            .as_ref()
            .is_some_and(|d| d.copy_deleted || !d.fields.is_empty());
        let reference = fi.object_ref(&());
        if drifted_now && fi.spec.drift.mode == DriftMode::Enforce {
            if let Some(corrected) = self
                .correct(&fi, &origin, member, &desired, drift.as_ref())
                .await
            {
                drift = Some(corrected);
            }
        } else if drifted_now && !same_drift(before.drift.as_ref(), drift.as_ref()) {
            self.ctx.metrics.drift(KIND, false);
            let note = describe(member, drift.as_ref());
            self.ctx
                .event_in_background(reference, true, "DriftDetected", "Sync", note);
        }
        let load_balancer = copy
            .as_ref()
            .map(|c| load_balancer_of(c))
            .unwrap_or_default();
        let after = Written {
            drift,
            load_balancer,
        };
        let changed = !same_drift(before.drift.as_ref(), after.drift.as_ref())
            || before.load_balancer != after.load_balancer;
        // Remember only what reached the host: a failed write is retried on the next event.
        if !changed || self.write_entry(&fi, member, &after).await {
            self.written.insert(key, after);
        }
        self.update_condition(&fi).await;
    }

    /// Restores the desired copy (Enforce); returns the entry recording the correction.
    async fn correct(
        &self,
        fi: &FederatedIngress,
        origin: &Origin,
        member: &str,
        desired: &Value,
        drift: Option<&DriftStatus>,
    ) -> Option<DriftStatus> {
        let client = self.ctx.registry.get(member)?.ready_client()?.clone();
        // The copy was Flotilla's (or is gone): no adoption check is needed to restore it.
        match apply_copy(
            &self.ctx.lease,
            &client,
            origin,
            desired,
            fi.spec.adoption,
            true,
        )
        .await
        {
            ApplyOutcome::Applied => {
                self.ctx.metrics.drift(KIND, true);
                let note = format!("restored: {}", describe(member, drift));
                self.ctx.event_in_background(
                    fi.object_ref(&()),
                    false,
                    "DriftCorrected",
                    "Sync",
                    note,
                );
                Some(DriftStatus {
                    fields: vec![],
                    copy_deleted: false,
                    corrections: Some(drift.and_then(|d| d.corrections).unwrap_or(0) + 1),
                    last_correction_time: Some(Time(jiff::Timestamp::now())),
                })
            }
            ApplyOutcome::Conflict(m) | ApplyOutcome::Failed(m) => {
                tracing::warn!(member, object = %origin.name, error = %m, "could not correct drift");
                None
            }
        }
    }

    /// Writes one member's entry under that member's own field manager. An empty entry releases
    /// it (the controller's fields of the entry stay).
    async fn write_entry(&self, fi: &FederatedIngress, member: &str, written: &Written) -> bool {
        // Nothing to say: apply an empty status, which releases this manager's fields of the
        // entry (the controller's stay).
        let status = if written.drift.is_none() && written.load_balancer.is_empty() {
            json!({})
        } else {
            let mut entry = json!({"cluster": member});
            if let Some(d) = &written.drift {
                entry["drift"] = json!(d);
            }
            if !written.load_balancer.is_empty() {
                entry["loadBalancer"] = json!(written.load_balancer);
            }
            json!({"clusters": [entry]})
        };
        let patch = json!({
            "apiVersion": "federation.flotilla.dev/v1alpha1",
            "kind": "FederatedIngress",
            "status": status,
        });
        self.apply_status(fi, &entry_manager(member), &patch).await
    }

    /// The Drifted condition, from what this syncer last wrote for every member of the object.
    async fn update_condition(&mut self, fi: &FederatedIngress) {
        let (namespace, name) = (fi.namespace().unwrap_or_default(), fi.name_any());
        let mut drifted = Vec::new();
        let mut corrected = 0;
        for ((ns, n, member), w) in &self.written {
            if ns != &namespace || n != &name {
                continue;
            }
            if let Some(d) = &w.drift {
                corrected += d.corrections.unwrap_or(0);
                if d.copy_deleted || !d.fields.is_empty() {
                    drifted.push(describe(member, Some(d)));
                }
            }
        }
        drifted.sort();
        let state = if drifted.is_empty() {
            let message = if corrected > 0 {
                format!("every copy matches; {corrected} drift(s) corrected so far")
            } else {
                "every copy matches what Flotilla applied".to_string()
            };
            (false, message)
        } else {
            (true, drifted.join("; "))
        };
        let key = (namespace, name);
        let previous = self.drifted.get(&key).cloned().or_else(|| {
            fi.status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Drifted"))
                .map(|c| (c.status == "True", c.message.clone()))
        });
        // Never written and nothing to say: absence already means no drift.
        if previous.is_none() && !state.0 && corrected == 0 {
            return;
        }
        if previous.as_ref() == Some(&state) {
            return;
        }
        let mut conditions = fi
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        conditions.retain(|c| c.type_ == "Drifted");
        set_condition(
            &mut conditions,
            NewCondition {
                type_: "Drifted",
                status: state.0,
                reason: if state.0 { "DriftDetected" } else { "NoDrift" },
                message: state.1.clone(),
                observed_generation: fi.metadata.generation,
            },
            Time(jiff::Timestamp::now()),
        );
        let patch = json!({
            "apiVersion": "federation.flotilla.dev/v1alpha1",
            "kind": "FederatedIngress",
            "status": {"conditions": conditions},
        });
        if self.apply_status(fi, CONDITION_MANAGER, &patch).await {
            self.drifted.insert(key, state);
        }
    }

    /// Whether the write succeeded.
    async fn apply_status(&self, fi: &FederatedIngress, manager: &str, patch: &Value) -> bool {
        let api: Api<FederatedIngress> =
            Api::namespaced(self.ctx.host.clone(), &fi.namespace().unwrap_or_default());
        let params = PatchParams::apply(manager).force();
        let name = fi.name_any();
        let Ok(written) = self
            .ctx
            .lease
            .fence(api.patch_status(&name, &params, &Patch::Apply(patch)))
            .await
        else {
            return false;
        };
        match written {
            Ok(_) => {
                self.ctx
                    .metrics
                    .status_written("syncer", patch.to_string().len());
                true
            }
            Err(e) => {
                tracing::warn!(object = %fi.name_any(), manager, error = %e, "could not write drift status");
                false
            }
        }
    }
}

/// One line per member: what drifted and who did it.
fn describe(member: &str, drift: Option<&DriftStatus>) -> String {
    let Some(d) = drift else {
        return format!("{member}: no drift");
    };
    if d.copy_deleted {
        return format!("{member}: the copy was deleted");
    }
    let mut by_manager: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for f in &d.fields {
        by_manager
            .entry(f.manager.clone().unwrap_or_else(|| "unknown".into()))
            .or_default()
            .push(&f.path);
    }
    let parts: Vec<String> = by_manager
        .iter()
        .map(|(m, paths)| format!("{} changed by {m}", paths.join(", ")))
        .collect();
    format!("{member}: {}", parts.join("; "))
}

fn load_balancer_of(copy: &Ingress) -> Vec<LoadBalancerAddress> {
    copy.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|points| {
            points
                .iter()
                .map(|p| LoadBalancerAddress {
                    ip: p.ip.clone(),
                    hostname: p.hostname.clone(),
                })
                .collect()
        })
        .unwrap_or_default()
}
