//! The command line: parses arguments and calls into the library.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use aws_auth_operator::commands::doctor::{self, DoctorCmd};
use aws_auth_operator::commands::history::{self, ConfirmCmd, HistoryCmd, RestoreCmd};
use aws_auth_operator::commands::import::{self, ImportArgs};
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd => {
            print!("{}", aws_auth_operator::api::crd_yaml());
            Ok(true)
        }
        Command::Run(args) => {
            limit_malloc_arenas();
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

/// glibc gives a thread that finds the allocator busy an arena of its own (up to eight per core),
/// and memory freed into one arena is not reused by another: during a burst the runtime's
/// threads each grow their own. Two arenas keep the peak about 1 MiB lower with 1,000 grants at
/// no measured cost in latency (BENCHMARKS.md). `MALLOC_ARENA_MAX` in the environment still wins.
/// Called before any thread starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    unsafe extern "C" {
        fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
    }
    const M_ARENA_MAX: std::ffi::c_int = -8;
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt sets one allocator parameter; nothing else runs yet.
        unsafe {
            mallopt(M_ARENA_MAX, 2);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("tokio runtime starts")
}
