//! The command-line tools around the engine: `render`, `import`, `whoami`, `doctor`, `history`,
//! `restore`, `confirm-removal`, `migrate`, and the manifest loading they share.
pub mod doctor;
pub mod history;
pub mod import;
pub mod manifests;
pub mod migrate;
pub mod render;
pub mod whoami;
