//! Leader election on a `coordination.k8s.io/v1` Lease in the operator's namespace.
//!
//! Expiry is judged by how long this replica has seen the Lease record unchanged, never by
//! comparing another replica's clock with ours (as client-go does). The leader renews every
//! quarter of the duration; each attempt is cut off at the guard's deadline at the latest, so a
//! hung request (kube's read timeout is minutes) never holds renewal up. Whether the leader may still
//! write is the lease guard's business ([`LeaseGuard`]): each successful renewal extends it to
//! `start of that renewal + renew deadline` (two thirds of the duration), on the monotonic
//! clock, and its own timer lapses it then, whatever the renewal call is doing. A standby takes
//! the Lease only after seeing the record unchanged for the whole duration, so the old leader
//! stops writing at least a third of the duration before anyone else may start.
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::time::Instant;

use flotilla_controller::LeaseGuard;

/// One replica's side of the election.
pub struct LeaderElection {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    observed: Option<Observed>,
}

/// The Lease record as last seen, and when this replica first saw it.
struct Observed {
    holder: Option<String>,
    renew: Option<MicroTime>,
    since: Instant,
}

impl LeaderElection {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: String,
        duration: Duration,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity,
            duration,
            observed: None,
        }
    }

    /// Uses `client` for the Lease from now on (the renewal thread's own connection).
    pub fn rebind(&mut self, client: Client) {
        let namespace = self.api.namespace().unwrap_or_default().to_owned();
        self.api = Api::namespaced(client, &namespace);
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn retry_period(&self) -> Duration {
        (self.duration / 8).max(Duration::from_millis(250))
    }

    fn renew_period(&self) -> Duration {
        self.duration / 4
    }

    /// How long one acquire attempt (a read and a write), or a release, may take before it is
    /// abandoned.
    fn attempt_timeout(&self) -> Duration {
        (self.duration / 4).max(Duration::from_millis(250))
    }

    /// How long a renewal may take: until the guard's deadline, after which its answer is of no
    /// use (a host slow to answer, e.g. just restarted, still gets the whole time).
    fn renew_timeout(guard: &LeaseGuard) -> Duration {
        guard
            .deadline()
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or_default()
            .max(Duration::from_millis(250))
    }

    /// How long after the start of its last successful renewal the leader may write.
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    /// One attempt, abandoned after `limit`.
    async fn attempt(&mut self, limit: Duration) -> Result<bool, String> {
        match tokio::time::timeout(limit, self.try_acquire_or_renew()).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {limit:?}")),
        }
    }

    /// Waits until this replica holds the Lease; returns the guard of this new term, valid until
    /// the start of the successful attempt plus the renew deadline.
    pub async fn acquire(&mut self) -> LeaseGuard {
        loop {
            let started = Instant::now();
            match self.attempt(self.attempt_timeout()).await {
                Ok(true) => return LeaseGuard::until(started + self.renew_deadline()),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "leader election: cannot read or write the Lease")
                }
            }
            tokio::time::sleep(self.retry_period()).await;
        }
    }

    /// Renews the Lease, extending `guard` after each success. Returns when another replica
    /// holds the Lease (the guard is lapsed then). A renewal that fails or hangs does not end
    /// this loop: the guard's own deadline timer does (see [`LeaseGuard::lapsed`]).
    pub async fn hold(&mut self, guard: &LeaseGuard) {
        let mut pause = self.renew_period();
        loop {
            tokio::time::sleep(pause).await;
            // A lapsed term cannot be renewed (leading again is a new term): no Lease write
            // from a replica that, say, was paused past its deadline.
            if !guard.is_valid() {
                return;
            }
            let started = Instant::now();
            match self.attempt(Self::renew_timeout(guard)).await {
                Ok(true) => {
                    guard.extend(started + self.renew_deadline());
                    pause = self.renew_period();
                }
                Ok(false) => {
                    tracing::error!(lease = %self.name, "leader election: another replica holds the Lease");
                    guard.lapse();
                    return;
                }
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "leader election: renewal failed");
                    // Try again sooner: the deadline is counted from the last success.
                    pause = self.retry_period();
                }
            }
        }
    }

    /// Gives the Lease up (graceful shutdown), so a standby takes over at once. The caller lapses
    /// its guard first: nothing is written by this replica after the release.
    pub async fn release(&mut self) {
        let limit = self.attempt_timeout();
        if tokio::time::timeout(limit, self.try_release())
            .await
            .is_err()
        {
            tracing::warn!(lease = %self.name, "leader election: could not release the Lease within {limit:?}");
        }
    }

    async fn try_release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(lease = %self.name, "leader election: released the Lease"),
            Err(e) => {
                tracing::warn!(lease = %self.name, error = %e, "leader election: could not release the Lease")
            }
        }
    }

    /// One attempt: `Ok(true)` when this replica holds the Lease afterwards.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let seconds = i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let record_changed = self
            .observed
            .as_ref()
            .is_none_or(|o| o.holder != holder || o.renew != spec.renew_time);
        if record_changed {
            self.observed = Some(Observed {
                holder: holder.clone(),
                renew: spec.renew_time.clone(),
                since: Instant::now(),
            });
        }
        let ours = holder.as_deref() == Some(self.identity.as_str());
        if let Some(other) = holder.as_ref().filter(|_| !ours) {
            let their_duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map(Duration::from_secs)
                .unwrap_or(self.duration);
            let unchanged_for = self
                .observed
                .as_ref()
                .map(|o| o.since.elapsed())
                .unwrap_or_default();
            if unchanged_for < their_duration {
                tracing::trace!(holder = %other, "leader election: held by another replica");
                return Ok(false);
            }
            tracing::info!(previous = %other, "leader election: the Lease expired; taking it");
        }
        if !ours {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(self.identity.clone());
        spec.lease_duration_seconds = Some(seconds);
        spec.renew_time = Some(now);
        // replace() sends the resourceVersion we read: a concurrent writer makes this a 409.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }
}
