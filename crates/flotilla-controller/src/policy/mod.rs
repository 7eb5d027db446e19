//! PropagationPolicy and ClusterPropagationPolicy: native host objects propagated by selectors.
//! Each propagated object gets a generated record (a FederatedObject, or a ClusterFederatedObject
//! for a cluster-scoped object) owned by it; the propagation engine does the rest, exactly as for
//! a FederatedObject written by hand. Nothing here writes to members.
//!
//! - [`plan`]: which policy propagates what, and the records that should exist (pure).
//! - [`dependencies`]: what a propagated object needs from its namespace (pure).
//! - [`runtime`]: the watches, and applying the difference.
pub mod dependencies;
pub mod expectations;
pub mod plan;
pub mod runtime;
