//! One health probe of a member: `GET /readyz` with the member's own credentials, under a timeout.
use std::time::{Duration, Instant};

use kube::Client;

use super::health::ProbeOutcome;

/// Probes once; returns the outcome and how long the answer took.
pub async fn probe_readyz(client: &Client, timeout: Duration) -> (ProbeOutcome, Duration) {
    let start = Instant::now();
    let request = match http::Request::get("/readyz").body(Vec::new()) {
        Ok(r) => r,
        Err(e) => {
            return (
                ProbeOutcome::Failed {
                    reason: "ProbeFailed",
                    message: e.to_string(),
                },
                start.elapsed(),
            );
        }
    };
    let outcome = match tokio::time::timeout(timeout, client.request_text(request)).await {
        Err(_) => ProbeOutcome::Failed {
            reason: "ProbeTimeout",
            message: format!("no answer from /readyz within {}ms", timeout.as_millis()),
        },
        Ok(Ok(body)) if body.trim() == "ok" => ProbeOutcome::Healthy,
        Ok(Ok(body)) => ProbeOutcome::Failed {
            reason: "ReadyzFailed",
            message: format!("/readyz answered {:?}", body.trim()),
        },
        Ok(Err(e)) => classify(&e),
    };
    (outcome, start.elapsed())
}

/// Names the cause of a failed request in terms an operator can act on.
pub fn classify(error: &kube::Error) -> ProbeOutcome {
    if let kube::Error::Api(status) = error {
        let (reason, hint) = match status.code {
            401 => (
                "Unauthorized",
                "the member rejected the credentials (an expired or revoked token?); issue new ones with `flotilla join <name> --member-context <member>` using the member's admin credentials",
            ),
            403 => ("Forbidden", "the credentials may not read /readyz"),
            _ => ("ReadyzFailed", "the member's API server is not ready"),
        };
        return ProbeOutcome::Failed {
            reason,
            message: format!("{hint}: HTTP {} {}", status.code, status.message.trim()),
        };
    }
    let chain = error_chain(error);
    let lower = chain.to_lowercase();
    let reason = if lower.contains("certificate")
        || lower.contains("unknownissuer")
        || lower.contains("tls")
    {
        "CertificateInvalid"
    } else if lower.contains("connection refused")
        || lower.contains("connect")
        || lower.contains("dns")
    {
        "Unreachable"
    } else if lower.contains("timed out") || lower.contains("timeout") {
        "ProbeTimeout"
    } else {
        "ProbeFailed"
    };
    ProbeOutcome::Failed {
        reason,
        message: chain,
    }
}

/// The error and all its sources, joined: kube's Display alone often hides the root cause.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}
