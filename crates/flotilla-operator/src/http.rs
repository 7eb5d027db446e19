//! The operator's HTTP endpoints: /metrics, /healthz, /readyz, and PUT /log-level.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, put};

use flotilla_controller::{LeaseGuard, Metrics};

use crate::telemetry::LogLevel;

/// What the endpoints report on.
#[derive(Clone)]
pub struct Health {
    /// Set once start-up is done (CRDs found). A standby replica is ready too: it is healthy and
    /// takes over when the leader goes.
    pub ready: Arc<AtomicBool>,
    /// Whether this replica currently leads.
    pub leading: Arc<AtomicBool>,
    /// The lease guard, once this replica leads: its counts of permitted and refused writes.
    pub guard: Arc<OnceLock<LeaseGuard>>,
}

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    health: Health,
    log_level: LogLevel,
}

/// Serves until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Metrics,
    health: Health,
    log_level: LogLevel,
) {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/log-level", put(set_log_level))
        .with_state(AppState {
            metrics,
            health,
            log_level,
        });
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    }
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "HTTP server stopped");
    }
}

async fn metrics_handler(State(state): State<AppState>) -> impl IntoResponse {
    let leading = i64::from(state.health.leading.load(Ordering::Relaxed));
    let mut body = state.metrics.encode();
    // The exposition ends with "# EOF"; put the leader gauge before it.
    let eof = body.rfind("# EOF").unwrap_or(body.len());
    let (permitted, refused) = state
        .health
        .guard
        .get()
        .map(LeaseGuard::counts)
        .unwrap_or_default();
    body.insert_str(
        eof,
        &format!(
            "# HELP flotilla_leader 1 when this replica holds the leader Lease.\n# TYPE flotilla_leader gauge\nflotilla_leader {leading}\n\
             # HELP flotilla_lease_guard_checks Writes the lease guard permitted or refused.\n# TYPE flotilla_lease_guard_checks counter\n\
             flotilla_lease_guard_checks_total{{result=\"permitted\"}} {permitted}\n\
             flotilla_lease_guard_checks_total{{result=\"refused\"}} {refused}\n"
        ),
    );
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.health.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

async fn set_log_level(State(state): State<AppState>, body: String) -> impl IntoResponse {
    match state.log_level.set(body.trim()) {
        Ok(()) => {
            tracing::info!(filter = body.trim(), "log level changed");
            (
                StatusCode::OK,
                format!("log filter set to {}\n", body.trim()),
            )
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")),
    }
}
