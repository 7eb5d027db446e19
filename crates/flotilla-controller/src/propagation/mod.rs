//! The propagation engine: puts host objects of any kind into members and reports back.
//!
//! - [`render`]: the desired copy (template + overrides + tracking), pure.
//! - [`member_ops`]: apply, adopt, delete, release a copy of any resource.
//! - [`informers`]: one copy watch per (member, resource), shared by every host kind.
//! - [`ledger`]: the engine's own moves (placements, removals, baselines), for the syncer.
//! - [`lanes`]: per-member concurrency and deadlines.
//! - [`reconcile`], [`status`], [`triggers`]: the reconcile of one host object.
//! - [`syncer`]: drift, reported and (under Enforce) handed back to the reconcile.
//! - [`sweeper`]: copies whose host object is gone.
//!
//! A host kind is one [`Propagated`] implementation; [`run`] starts its controller, syncer and
//! sweeper on the shared engine.
pub mod health;
pub mod host_watch;
pub mod in_order;
pub mod informers;
pub mod kind;
pub mod kinds;
pub mod lanes;
pub mod ledger;
pub mod list_keys;
pub mod log_limit;
pub mod member_ops;
pub mod origin;
pub mod per_copy;
pub mod reconcile;
pub mod render;
pub mod replicas;
pub mod server_fields;
pub mod status;
pub mod statuses;
pub mod sweeper;
pub mod syncer;
pub mod syncer_writes;
pub mod triggers;
pub mod truncate;
pub mod uid;
pub mod write_queue;

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, Store};

pub use informers::CopyInformers;
pub use kind::Propagated;
pub use ledger::{Ledger, Placed};

use crate::context::Context;

/// Every host kind the engine propagates (the `origin-kind` values it trusts on copies).
pub const KINDS: [&str; 3] = [
    flotilla_api::federated_ingress::KIND,
    flotilla_api::federated_object::KIND,
    flotilla_api::federated_object::CLUSTER_KIND,
];

/// Reconciles at once per kind, by default. Unbounded, a burst of objects put thousands of
/// requests in flight on the members' clients at the same moment; bounded, objects are worked
/// off in order at the rate the members take.
pub const CONCURRENCY: u16 = 32;

/// What every host kind's controller shares.
pub struct Engine {
    pub ctx: Arc<Context>,
    pub informers: Arc<CopyInformers>,
    pub ledger: Ledger,
    pub lanes: lanes::Lanes,
    /// Each copy kind's resource, per member.
    pub kinds: kinds::Kinds,
    /// Every host kind's objects' status (uids are unique across kinds); stored objects carry
    /// none.
    pub statuses: Arc<statuses::Statuses>,
    log_limit: log_limit::LogLimit,
}

impl Engine {
    /// The engine, with its copy watches following the member registry.
    pub fn start(ctx: Arc<Context>) -> Arc<Self> {
        let informers = Arc::new(CopyInformers::default());
        tokio::spawn(informers.clone().run(ctx.clone()));
        Arc::new(Self {
            ctx,
            informers,
            ledger: Ledger::default(),
            lanes: lanes::Lanes::default(),
            kinds: kinds::Kinds::default(),
            statuses: Arc::default(),
            log_limit: log_limit::LogLimit::default(),
        })
    }

    /// Runs one operation on `member` in its lane, under the lease guard: nothing reaches a
    /// member once this replica may no longer lead (see [`crate::lease_guard`]).
    pub async fn in_lane<T>(
        &self,
        member: &str,
        op: impl std::future::Future<Output = T>,
    ) -> Result<T, lanes::LaneError> {
        self.lanes
            .run(member, self.ctx.lease.fence(op))
            .await?
            .map_err(|_| lanes::LaneError::Fenced)
    }

    /// Logs a member's failure, once per member and cause and then at most once a minute.
    pub fn log_member_failure(
        &self,
        member: &str,
        operation: &str,
        message: &str,
        permanent: bool,
    ) {
        if let Some(suppressed) = self.log_limit.admit(member, message) {
            tracing::warn!(member, operation, permanent, suppressed, error = %truncate::message(message), "member request failed");
        }
    }
}

/// A host kind's objects as the engine caches them: the store, whose objects carry no status,
/// and their statuses beside it.
#[derive(Clone)]
pub struct HostObjects<K: kube::Resource<DynamicType = ()> + 'static> {
    pub store: Store<K>,
    pub statuses: Arc<statuses::Statuses>,
}

/// Runs `K`'s controller, status syncer and sweeper on `engine`, with at most `concurrency`
/// reconciles at once, until `shutdown` resolves. Returns the host objects. Copies are
/// watched in each member once an object of their kind is reconciled there.
pub fn run<K: Propagated>(
    engine: Arc<Engine>,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> (HostObjects<K>, impl std::future::Future<Output = ()>) {
    let ctx = engine.ctx.clone();
    let (reader, writer) = reflector::store();
    let (invalid, invalid_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(host_watch::report(ctx.clone(), K::KIND, invalid_rx));
    let objects = HostObjects {
        store: reader.clone(),
        statuses: engine.statuses.clone(),
    };
    let statuses = engine.statuses.clone();
    let stream = triggers::host_changes(
        host_watch::watch::<K>(&ctx, invalid)
            .map_ok(move |event| {
                // Nothing reads the managed fields, and they are a good part of every cached
                // object; the status is kept beside the store, packed.
                let mut event = event.modify(|o| o.managed_fields_mut().clear());
                statuses.observe(&mut event);
                event
            })
            .reflect(writer),
    );
    let changes = futures::stream::select(
        futures::stream::select(
            triggers::member_changes(&ctx.registry, reader.clone(), engine.statuses.clone()),
            triggers::kind_changes(&engine.kinds, reader.clone(), engine.statuses.clone()),
        ),
        triggers::scaling_changes(&ctx.scaled, reader.clone()),
    );
    let copy_events = engine.informers.subscribe(K::KIND);
    let (rechecks, recheck_rx) = tokio::sync::mpsc::unbounded_channel();
    let (enforce, enforce_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(syncer::run::<K>(
        engine.clone(),
        reader.clone(),
        copy_events,
        recheck_rx,
        enforce,
    ));
    tokio::spawn(sweeper::run::<K>(engine.clone(), reader.clone()));
    let state = Arc::new(reconcile::State::new(engine, rechecks));
    let corrections = tokio_stream_of(enforce_rx);
    let run = Controller::for_stream(stream, reader.clone())
        .with_config(ControllerConfig::default().concurrency(concurrency))
        .reconcile_on(futures::stream::select(changes, corrections))
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, reconcile::error_policy, state)
        .for_each(|_| futures::future::ready(()));
    (objects, run)
}

fn tokio_stream_of<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
