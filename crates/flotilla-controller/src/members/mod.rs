//! Member clusters: credentials, health probing, and the registry the other controllers read.
pub mod agent;
pub mod controller;
pub mod credentials;
pub mod health;
pub mod identity;
pub mod kubeconfig_policy;
pub mod probe;
pub mod registry;
pub mod renewal;
pub mod token;
