//! The operator's HTTP endpoints: /metrics, /healthz and /readyz on the metrics port, which the
//! cluster network reaches (Prometheus, kubelet probes); PUT /log-level on the admin port alone,
//! which listens on loopback only, since it has no authentication.
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
}

/// The metrics port's routes. Anything else, PUT /log-level included, is 404 here.
fn metrics_router(metrics: Metrics, health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(AppState { metrics, health })
}

/// The admin port's routes.
fn admin_router(log_level: LogLevel) -> Router {
    Router::new()
        .route("/log-level", put(set_log_level))
        .with_state(log_level)
}

/// Serves the metrics port until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Metrics, health: Health) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    }
    if let Err(e) = axum::serve(listener, metrics_router(metrics, health)).await {
        tracing::error!(error = %e, "HTTP server stopped");
    }
}

/// Serves the admin port until the process ends.
pub async fn serve_admin(listener: tokio::net::TcpListener, log_level: LogLevel) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving PUT /log-level (admin, loopback only)");
    }
    if let Err(e) = axum::serve(listener, admin_router(log_level)).await {
        tracing::error!(error = %e, "admin HTTP server stopped");
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
    let heap = crate::allocator::exposition();
    body.insert_str(
        eof,
        &format!(
            "# HELP flotilla_leader 1 when this replica holds the leader Lease.\n# TYPE flotilla_leader gauge\nflotilla_leader {leading}\n\
             # HELP flotilla_lease_guard_checks Writes the lease guard permitted or refused.\n# TYPE flotilla_lease_guard_checks counter\n\
             flotilla_lease_guard_checks_total{{result=\"permitted\"}} {permitted}\n\
             flotilla_lease_guard_checks_total{{result=\"refused\"}} {refused}\n{heap}"
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

async fn set_log_level(State(log_level): State<LogLevel>, body: String) -> impl IntoResponse {
    match log_level.set(body.trim()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// One raw HTTP/1.0 exchange, on a blocking thread (tokio's io-util is not enabled here).
    async fn request(addr: std::net::SocketAddr, head: &'static str) -> String {
        tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut stream = std::net::TcpStream::connect(addr).expect("connects");
            stream.write_all(head.as_bytes()).expect("writes");
            let mut response = String::new();
            stream.read_to_string(&mut response).expect("reads");
            response
        })
        .await
        .expect("joins")
    }

    /// The metrics port serves what Prometheus and the kubelet need, and not the log level.
    #[tokio::test]
    async fn the_metrics_port_has_no_admin_endpoint() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let addr = listener.local_addr().expect("addr");
        let health = Health {
            ready: Arc::new(AtomicBool::new(true)),
            leading: Arc::new(AtomicBool::new(false)),
            guard: Arc::new(OnceLock::new()),
        };
        tokio::spawn(serve(listener, Metrics::new(), health));
        let put = request(
            addr,
            "PUT /log-level HTTP/1.0\r\nContent-Length: 5\r\n\r\ndebug",
        )
        .await;
        assert!(put.starts_with("HTTP/1.0 404"), "{put}");
        let ready = request(addr, "GET /readyz HTTP/1.0\r\n\r\n").await;
        assert!(ready.starts_with("HTTP/1.0 200"), "{ready}");
    }
}
