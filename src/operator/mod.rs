//! The operator: watches grants and aws-auth, writes the engine's plan while it leads, reports
//! statuses and events, and serves health, metrics and the admission webhook.
pub mod controller;
pub mod duration;
pub mod http;
pub mod leader;
pub mod telemetry;
pub mod webhook;
