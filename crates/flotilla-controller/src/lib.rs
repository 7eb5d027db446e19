//! Flotilla's host-side controllers.
//!
//! Each reconcile follows the same steps: dereference (read what it needs), validate (pure),
//! build (pure: placement decision, desired member objects), apply (server-side apply to members,
//! one field manager), update status (only when it changed).
pub mod allowlist;
pub mod conditions;
pub mod context;
pub mod digest;
pub mod error;
pub mod federated_object;
pub mod finalizer;
pub mod host_namespaces;
pub mod ingress;
pub mod lease_guard;
pub mod members;
pub mod metrics;
pub mod placement_change;
pub mod placement_input;
pub mod policy;
pub mod propagation;
pub mod scaled_targets;
pub mod scaling;
pub mod status_apply;
pub mod store;
pub mod user_agent;

pub use context::Context;
pub use error::{Error, Result};
pub use lease_guard::{Fenced, LeaseGuard};
pub use metrics::Metrics;
