//! The status syncer's logic: what Flotilla put in each member, compared with what is there now.
//!
//! Pure: no client, no clock (time is an input). The controller crate wires it to the member
//! watches and writes what it computes.
pub mod diff;
pub mod drift;
pub mod managers;

pub use diff::{FieldDiff, diff_owned_fields};
pub use drift::{DriftInput, drift_status, same_drift};
pub use managers::manager_of;
