//! Errors of the host-side reconcilers, each with a stable label for metrics.
use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("host API request failed: {0}")]
    HostApi(#[source] kube::Error),

    #[error("member {cluster}: {source}")]
    MemberApi {
        cluster: String,
        #[source]
        source: kube::Error,
    },

    #[error("member {cluster}: request timed out after {seconds}s")]
    MemberTimeout { cluster: String, seconds: u64 },

    #[error("invalid spec: {0}")]
    InvalidSpec(String),

    #[error("cannot serialize {what}: {source}")]
    Serialize {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },

    #[error("cleaning up member copies failed: {0}")]
    Cleanup(String),

    #[error(transparent)]
    Fenced(#[from] crate::lease_guard::Fenced),

    #[error("object has no {0}")]
    MissingObjectKey(&'static str),

    #[error("reconcile abandoned after {seconds}s (a request did not answer); retried")]
    ReconcileTimeout { seconds: u64 },
}

impl Error {
    /// A low-cardinality label for the `errors` metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::HostApi(_) => "host_api",
            Error::MemberApi { .. } => "member_api",
            Error::MemberTimeout { .. } => "member_timeout",
            Error::InvalidSpec(_) => "invalid_spec",
            Error::Serialize { .. } => "serialize",
            Error::Cleanup(_) => "cleanup",
            Error::MissingObjectKey(_) => "missing_object_key",
            Error::Fenced(_) => "fenced",
            Error::ReconcileTimeout { .. } => "reconcile_timeout",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
