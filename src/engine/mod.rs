//! The engine: pure functions from grants and aws-auth's text to the new text and a verdict per
//! grant. No I/O; the operator and the commands both call into it, never the other way round.
pub mod access_entry;
pub mod authmap;
pub mod entries;
pub(crate) mod fingerprint;
pub mod glob;
pub mod history;
mod parallel;
pub mod plan;
pub mod policy;
pub mod rules;
pub mod validate;
