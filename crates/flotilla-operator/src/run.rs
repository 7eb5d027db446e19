//! `flotilla run`: the operator.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use kube::Client;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::watch;

use flotilla_api::{ClusterFederatedObject, FederatedIngress, FederatedObject, MemberCluster};
use flotilla_controller::ingress::ingress_resource;
use flotilla_controller::members::controller as member_controller;
use flotilla_controller::members::kubeconfig_policy::PolicyOptions;
use flotilla_controller::propagation::{self, Engine};
use flotilla_controller::{Context, LeaseGuard, Metrics};

use crate::cli::{HostArgs, RunArgs};
use crate::http::{self, Health};
use crate::leader::LeaderElection;
use crate::renewer::Renewer;
use crate::telemetry;

/// How long in-flight reconciles may take to finish after SIGTERM. The Lease is renewed while
/// they drain, and every write still runs under the lease guard, so the drain never outlives it.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);
/// How often start-up retries a host it cannot reach.
const HOST_RETRY: Duration = Duration::from_secs(2);
/// The exit status when the lease guard lapsed (the Lease was lost, or not renewed in time).
const EXIT_LEASE_LOST: i32 = 1;

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let log_level = telemetry::init(args.log_format);
    let identity = args.identity.clone().unwrap_or_else(default_identity);
    flotilla_controller::user_agent::set_identity(&identity);
    let host_config = host_config(&args.host).await?;
    let client = Client::try_from(host_config.clone()).context("building the host client")?;
    let namespace = args
        .namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .unwrap_or_else(|| "flotilla-system".to_string());

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested");
        let _ = stop_tx.send(true);
    });

    let metrics = Metrics::new();
    let health = Health {
        ready: Arc::new(AtomicBool::new(false)),
        leading: Arc::new(AtomicBool::new(false)),
        guard: Arc::new(OnceLock::new()),
    };
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("cannot listen on {} (--metrics-addr)", args.metrics_addr))?;
    tokio::spawn(http::serve(listener, metrics.clone(), health.clone()));
    let admin = tokio::net::TcpListener::bind(args.admin_addr)
        .await
        .with_context(|| format!("cannot listen on {} (--admin-addr)", args.admin_addr))?;
    tokio::spawn(http::serve_admin(admin, log_level));

    tokio::select! {
        checked = crds_installed(&client) => checked?,
        () = stopped(stop_rx.clone()) => return Ok(()),
    }
    health.ready.store(true, Ordering::Relaxed);

    let mut election = args.leader_elect.then(|| {
        LeaderElection::new(
            client.clone(),
            &namespace,
            &args.lease_name,
            identity.clone(),
            Duration::from_secs(args.lease_duration_seconds),
        )
    });
    let guard = match election.as_mut() {
        Some(election) => {
            tracing::info!(identity = election.identity(), lease = %args.lease_name, %namespace, "waiting to become leader");
            tokio::select! {
                guard = election.acquire() => guard,
                () = stopped(stop_rx.clone()) => return Ok(()),
            }
        }
        None => LeaseGuard::unbounded(),
    };
    let _ = health.guard.set(guard.clone());
    health.leading.store(true, Ordering::Relaxed);
    tracing::info!(identity = %identity, "leading: starting controllers");

    let host_namespaces =
        flotilla_controller::host_namespaces::HostNamespaces::start(client.clone()).await;
    let mut ctx = Context::new(client, namespace, identity, metrics, guard.clone());
    ctx.token_renew_percent = args.member_token_renew_percent;
    ctx.allow_adoption = args.allow_adoption;
    ctx.host_namespaces = Some(host_namespaces);
    ctx.member_policy = PolicyOptions {
        allow_insecure_tls: args.allow_insecure_member_tls,
    };
    ctx.federated_kinds = flotilla_controller::allowlist::Allowlist::parse(&args.federated_kinds)
        .map_err(anyhow::Error::msg)?;
    if args.allow_insecure_member_tls {
        tracing::warn!(
            "--allow-insecure-member-tls: member kubeconfigs may use http:// or skip TLS verification (development only)"
        );
    }
    let ctx = Arc::new(ctx);
    let members = tokio::spawn(member_controller::run(
        ctx.clone(),
        stopped(stop_rx.clone()),
    ));
    let engine = Engine::start(ctx.clone());
    // Watched from the start, so the sweeper finds copies of FederatedIngresses deleted while
    // the operator was down; other kinds are watched once an object of theirs is reconciled.
    engine.informers.watch_resource(&ctx, ingress_resource());
    let (_, ingresses) = propagation::run::<FederatedIngress>(
        engine.clone(),
        args.max_concurrent_reconciles,
        stopped(stop_rx.clone()),
    );
    let (workloads, objects) = propagation::run::<FederatedObject>(
        engine.clone(),
        args.max_concurrent_reconciles,
        stopped(stop_rx.clone()),
    );
    let copies = engine.informers.clone();
    let (_, cluster_objects) = propagation::run::<ClusterFederatedObject>(
        engine,
        args.max_concurrent_reconciles,
        stopped(stop_rx.clone()),
    );
    let policies = flotilla_controller::policy::runtime::run(ctx.clone(), stopped(stop_rx.clone()));
    let ingresses = tokio::spawn(async move {
        futures::join!(ingresses, objects, cluster_objects, policies);
    });
    let mut scaling_config =
        flotilla_controller::scaling::ScalingConfig::new(args.prometheus_url.clone());
    scaling_config.promql_namespace_label =
        Some(args.promql_namespace_label.clone()).filter(|l| !l.is_empty());
    scaling_config.sync_period = std::time::Duration::from_millis(args.scaling_sync_period_ms);
    let scaling_controller = tokio::spawn(flotilla_controller::scaling::controller(
        ctx.clone(),
        scaling_config,
        workloads,
        copies,
        stopped(stop_rx.clone()),
    ));

    // Renewals run on a thread of their own with a host connection of their own (see
    // renewer.rs), so the controllers' load cannot delay them.
    let renewer = match election {
        Some(election) => Some(
            Renewer::spawn(election, host_config, guard.clone(), lease_lost)
                .context("starting the Lease renewal thread")?,
        ),
        None => None,
    };
    // Until SIGTERM: exit the moment the guard lapses. The guard's deadline timer runs on its
    // own, so a renewal that hangs cannot delay the exit.
    tokio::select! {
        () = guard.lapsed() => lease_lost(),
        () = stopped(stop_rx.clone()) => {}
    }
    // Graceful shutdown: the controllers finish their in-flight reconciles while the Lease is
    // still renewed (and writes still fenced by it).
    let drain = tokio::time::timeout(DRAIN_TIMEOUT, async {
        let _ = members.await;
        let _ = ingresses.await;
        let _ = scaling_controller.await;
    });
    tokio::select! {
        () = guard.lapsed() => lease_lost(),
        drained = drain => if drained.is_err() {
            tracing::warn!("in-flight reconciles did not finish within {DRAIN_TIMEOUT:?}");
        },
    }
    // Tasks not tied to the stop signal (member agents, copy watchers, the status syncer) end
    // with the process; the guard makes sure none of them writes once the Lease is released.
    guard.lapse();
    health.leading.store(false, Ordering::Relaxed);
    if let Some(renewer) = renewer {
        renewer.release().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The guard lapsed: another replica may lead now. Exit at once rather than drain; the next
/// start is a new term with all state rebuilt (see the README's "Leader election").
fn lease_lost() -> ! {
    tracing::error!("lost the leader Lease; exiting so that no write happens without it");
    std::process::exit(EXIT_LEASE_LOST)
}

/// Checks that the CRDs are installed. A host that cannot be reached is waited for (a restart
/// during a host outage stands by instead of crash-looping); a host that answers with an error
/// is a configuration problem and ends start-up.
async fn crds_installed(client: &Client) -> anyhow::Result<()> {
    let api = Api::<MemberCluster>::all(client.clone());
    loop {
        match api.list(&ListParams::default().limit(1)).await {
            Ok(_) => return Ok(()),
            // An answer other than "unavailable" is a configuration problem, not an outage.
            Err(kube::Error::Api(s)) if s.code < 500 && s.code != 429 => {
                let e = kube::Error::Api(s);
                return Err(e).context("cannot list MemberClusters on the host; are the CRDs installed? (helm install, or `flotilla crd | kubectl apply -f -`)");
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach the host API server; retrying");
                tokio::time::sleep(HOST_RETRY).await;
            }
        }
    }
}

/// The host client: an explicit kubeconfig/context, else in-cluster config, else $KUBECONFIG.
pub async fn host_client(host: &HostArgs) -> anyhow::Result<Client> {
    Client::try_from(host_config(host).await?).context("building the host client")
}

/// The host client's configuration (see [`host_client`]).
pub async fn host_config(host: &HostArgs) -> anyhow::Result<kube::Config> {
    let mut config = config_of(host).await?;
    flotilla_controller::user_agent::apply(&mut config);
    Ok(config)
}

async fn config_of(host: &HostArgs) -> anyhow::Result<kube::Config> {
    if host.kubeconfig.is_none() && host.context.is_none() {
        return kube::Config::infer()
            .await
            .context("no host cluster: not in a pod, and no usable $KUBECONFIG (or pass --kubeconfig/--context)");
    }
    let kubeconfig = match &host.kubeconfig {
        Some(path) => {
            Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?
        }
        None => Kubeconfig::read().context("reading $KUBECONFIG")?,
    };
    let options = KubeConfigOptions {
        context: host.context.clone(),
        ..KubeConfigOptions::default()
    };
    kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .context("building the host client from the kubeconfig")
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "flotilla".to_string());
    format!("{host}-{}", std::process::id())
}

/// Resolves once a stop has been requested. Send + Sync, as the controllers' shutdown needs.
fn stopped(
    mut rx: watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> + Send + Sync + 'static {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = rx.wait_for(|stop| *stop).await;
        let _ = done_tx.send(());
    });
    async move {
        let _ = done_rx.await;
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
