//! `basin`: one binary, every role. Parses the command line and settings, starts logging,
//! runs the chosen role and waits for SIGINT/SIGTERM to shut it down gracefully.

// A binary crate: `pub` marks what modules offer each other, nothing is exported.
#![allow(unreachable_pub)]

mod alerter_proxy;
mod cli;
mod malloc;
mod roles;
mod server;
mod settings;
mod telemetry;

use clap::Parser;
use cli::{Cli, Command};
use settings::{Overrides, Settings};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// Exit code for bad flags or configuration values (as clap uses for bad flags).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    malloc::tune();
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Standalone(cli.standalone));
    if let Command::PromqlTest(args) = &command {
        let mut argv: Vec<String> = Vec::new();
        if let Some(k) = &args.known_failures {
            argv.push("--known-failures".into());
            argv.push(k.clone());
        }
        argv.extend(args.files.iter().cloned());
        let code = basin_query::promqltest::run_cli(&argv);
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    if let Command::Alerter(a) = &command
        && let Some(files) = &a.check
    {
        let files =
            if files.is_empty() { a.rule_files.clone().unwrap_or_default() } else { files.clone() };
        return check_rules(&files);
    }
    let (role, overrides) = overrides_of(&command);
    let settings = match settings::load(&overrides) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("basin {role}: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Err(e) = telemetry::init(&settings) {
        eprintln!("basin {role}: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("basin: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(role, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "basin {role} failed");
            eprintln!("basin {role}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn overrides_of(command: &Command) -> (&'static str, Overrides<'_>) {
    use config::Value;
    let str_value = |v: &Option<String>| v.as_ref().map(|v| Value::from(v.as_str()));
    match command {
        Command::Standalone(a) => (
            "standalone",
            Overrides {
                common: Some(&a.common),
                engine: Some(&a.engine),
                write: Some(&a.write),
                read: Some(&a.read),
                client: Some(&a.client),
                ..Overrides::default()
            },
        ),
        Command::Ingest(a) => (
            "ingest",
            Overrides {
                common: Some(&a.common),
                cluster: Some(&a.cluster),
                write: Some(&a.write),
                client: Some(&a.client),
                ..Overrides::default()
            },
        ),
        Command::Storage(a) => {
            let mut single = Vec::new();
            if let Some(v) = str_value(&a.grpc_listen) {
                single.push(("grpc_listen", v));
            }
            (
                "storage",
                Overrides {
                    common: Some(&a.common),
                    engine: Some(&a.engine),
                    single,
                    ..Overrides::default()
                },
            )
        }
        Command::Query(a) => {
            let mut single = Vec::new();
            if let Some(v) = str_value(&a.tenant_header) {
                single.push(("tenant_header", v));
            }
            (
                "query",
                Overrides {
                    common: Some(&a.common),
                    cluster: Some(&a.cluster),
                    read: Some(&a.read),
                    client: Some(&a.client),
                    single,
                    ..Overrides::default()
                },
            )
        }
        Command::Alerter(a) => {
            let mut single = Vec::new();
            let list = |v: &Vec<String>| {
                Value::from(v.iter().map(|s| Value::from(s.as_str())).collect::<Vec<_>>())
            };
            if let Some(v) = &a.rule_files {
                single.push(("rule_files", list(v)));
            }
            if let Some(v) = str_value(&a.query_url) {
                single.push(("query_url", v));
            }
            if let Some(v) = str_value(&a.remote_write_url) {
                single.push(("remote_write_url", v));
            }
            if let Some(v) = &a.alertmanager_url {
                single.push(("alertmanager_url", list(v)));
            }
            if let Some(v) = &a.external_label {
                single.push(("external_label", list(v)));
            }
            if let Some(v) = str_value(&a.evaluation_interval) {
                single.push(("evaluation_interval", v));
            }
            if let Some(v) = str_value(&a.external_url) {
                single.push(("external_url", v));
            }
            ("alerter", Overrides { common: Some(&a.common), single, ..Overrides::default() })
        }
        Command::PromqlTest(_) => ("promql-test", Overrides::default()),
    }
}

/// `basin alerter --check FILES`: validates rule files like `promtool check rules`.
fn check_rules(files: &[String]) -> ExitCode {
    if files.is_empty() {
        eprintln!("basin alerter --check: no rule files given");
        return ExitCode::from(EXIT_USAGE);
    }
    match basin_alerter::check_rule_files(files) {
        Ok(s) => {
            println!("SUCCESS: {} files, {} groups, {} rules", s.files, s.groups, s.rules);
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("FAILED: {e}");
            }
            ExitCode::from(1)
        }
    }
}

async fn run(role: &'static str, settings: Settings) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    tokio::spawn(wait_for_signal(shutdown.clone()));
    tracing::info!(role, version = env!("CARGO_PKG_VERSION"), "starting basin");
    match role {
        "standalone" => roles::run_standalone(settings, shutdown).await,
        "ingest" => roles::run_ingest(settings, shutdown).await,
        "storage" => roles::run_storage(settings, shutdown).await,
        "query" => roles::run_query(settings, shutdown).await,
        "alerter" => roles::run_alerter(settings, shutdown).await,
        other => anyhow::bail!("unknown role {other}"),
    }?;
    tracing::info!(role, "stopped");
    Ok(())
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
async fn wait_for_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
    shutdown.cancel();
}
