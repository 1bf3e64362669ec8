//! The command-line tools around the engine: `render`, `import`, `whoami`, `doctor`, `history`,
//! `restore`, `confirm-removal`, `migrate`, and the manifest loading they share.
pub mod doctor;
pub mod history;
pub mod import;
pub mod manifests;
pub mod migrate;
pub mod render;
pub mod whoami;

/// Writes a command's report to stdout (a closed pipe is an I/O error like any other).
pub fn print(stdout: &mut dyn std::io::Write, text: &str) -> crate::Result<()> {
    stdout
        .write_all(text.as_bytes())
        .map_err(|source| crate::Error::Io {
            path: "<stdout>".into(),
            source,
        })
}
