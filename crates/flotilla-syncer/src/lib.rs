//! The status syncer: what Flotilla put in each member, compared with what is there now.
//!
//! This crate starts with the pure part, the field-by-field comparison; the member watchers and
//! the status writer build on it.
pub mod diff;

pub use diff::{FieldDiff, diff_owned_fields};
