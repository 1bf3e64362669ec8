//! The command line: parses arguments and calls into the library.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use aws_auth_operator::commands::doctor::{self, DoctorCmd};
use aws_auth_operator::commands::history::{self, ConfirmCmd, HistoryCmd, RestoreCmd};
use aws_auth_operator::commands::import::{self, ImportArgs};
use aws_auth_operator::commands::migrate::{self, MigrateCmd};
use aws_auth_operator::commands::render::{self, RenderArgs};
use aws_auth_operator::commands::whoami::{self, WhoamiArgs};
use aws_auth_operator::operator::controller::{self, RunArgs};

#[derive(Parser)]
#[command(
    name = "aws-auth-operator",
    version,
    about = "Declarative, lockout-proof access to Amazon EKS through kube-system/aws-auth"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator: reconcile every IamAccessGrant into aws-auth until stopped.
    Run(Box<RunArgs>),
    /// Offline: grants + current aws-auth -> the new aws-auth and a verdict per grant (exit 1 if any is refused).
    Render(RenderArgs),
    /// Print the IamAccessGrant CustomResourceDefinition.
    Crd,
    /// Ask AWS STS who you are and explain how aws-auth maps you, or why not (exit 1 if it does not).
    Whoami(WhoamiArgs),
    /// Turn today's aws-auth entries into IamAccessGrant manifests (exit 1 if a key is unreadable).
    Import(ImportArgs),
    /// List the versions of aws-auth the operator kept before each write (`history show N`: one).
    History(HistoryCmd),
    /// Write version N's entries that the operator does not manage back into aws-auth.
    Restore(RestoreCmd),
    /// Let a removal held by the breaker proceed: names it by the token it was given.
    ConfirmRemoval(ConfirmCmd),
    /// Diagnose access problems step by step (`doctor irsa`: IAM roles for service accounts).
    #[command(subcommand)]
    Doctor(DoctorCmd),
    /// From aws-auth to EKS access entries, checked: `plan`, `apply` (creates, then verifies),
    /// `verify` (exit 1 while any aws-auth principal would lose access).
    #[command(subcommand)]
    Migrate(MigrateCmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd => {
            print!("{}", aws_auth_operator::api::crd_yaml());
            Ok(true)
        }
        Command::Run(args) => {
            tune_malloc();
            aws_auth_operator::operator::telemetry::init(args.log_format);
            runtime().block_on(controller::run(*args)).map(|()| true)
        }
        Command::Whoami(args) => runtime().block_on(whoami::run(&args, &mut std::io::stdout())),
        Command::Import(args) => runtime().block_on(import::run(
            &args,
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        )),
        Command::History(cmd) => runtime().block_on(history::history(&cmd, &mut std::io::stdout())),
        Command::Restore(cmd) => {
            runtime().block_on(history::restore_cmd(&cmd, &mut std::io::stdout()))
        }
        Command::ConfirmRemoval(cmd) => {
            runtime().block_on(history::confirm_removal(&cmd, &mut std::io::stdout()))
        }
        Command::Doctor(cmd) => runtime().block_on(doctor::run(&cmd, &mut std::io::stdout())),
        Command::Migrate(cmd) => runtime().block_on(migrate::run(
            &cmd,
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        )),
        Command::Render(args) => render::run(&args, &mut std::io::stdout(), &mut std::io::stderr()),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Two glibc allocator settings, each left to the environment when it sets it, called before any
/// thread starts (BENCHMARKS.md has the figures):
/// - glibc gives a thread that finds the allocator busy an arena of its own (up to eight per
///   core), and memory freed into one arena is not reused by another: during a burst the
///   runtime's threads each grow their own. Two arenas (`MALLOC_ARENA_MAX`).
/// - Blocks of 128 KiB and more (aws-auth's text, the bodies that carry it: up to 1 MiB each) are
///   mapped and unmapped on their own (`MALLOC_MMAP_THRESHOLD_`). glibc would otherwise raise
///   that threshold after the first such block is freed and carve the next ones from the heap,
///   where they leave holes as large as themselves.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_malloc() {
    unsafe extern "C" {
        fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
    }
    const M_ARENA_MAX: std::ffi::c_int = -8;
    const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
    let settings = [
        ("MALLOC_ARENA_MAX", M_ARENA_MAX, 2),
        ("MALLOC_MMAP_THRESHOLD_", M_MMAP_THRESHOLD, 128 * 1024),
    ];
    for (env, param, value) in settings {
        if std::env::var_os(env).is_none() {
            // SAFETY: mallopt sets one allocator parameter; nothing else runs yet.
            unsafe {
                mallopt(param, value);
            }
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("tokio runtime starts")
}
