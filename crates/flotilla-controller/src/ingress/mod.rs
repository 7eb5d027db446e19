//! FederatedIngress: placement, propagation to members, pruning, cleanup.
pub mod controller;
pub mod copies;
pub mod desired;
pub mod drift;
pub mod index;
pub mod status;
pub mod sweeper;
pub mod triggers;
