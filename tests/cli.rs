//! The command line and settings contract: roles, flag names, precedence of config file <
//! environment < flags, and exit code 2 with the key named for bad values.

mod common;

use common::{free_port, http, wait_until};
use std::process::{Command, Stdio};
use std::time::Duration;

fn basin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_basin"));
    c.stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("BASIN_") {
            c.env_remove(k);
        }
    }
    c
}

fn help(args: &[&str]) -> String {
    let out = basin().args(args).arg("--help").output().expect("run basin");
    assert!(out.status.success(), "{args:?} --help failed");
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn help_lists_roles_and_every_contract_flag() {
    let top = help(&[]);
    for role in ["standalone", "ingest", "storage", "query", "alerter", "promql-test"] {
        assert!(top.contains(role), "basin --help lacks {role}:\n{top}");
    }
    let common = ["--config", "--http-listen", "--log-format", "--log-level"];
    let cases: &[(&str, &[&str])] = &[
        ("standalone", &["--data-dir", "--retention", "--dedup-interval", "--ha-replica-label"]),
        ("storage", &["--grpc-listen", "--data-dir", "--retention", "--dedup-interval"]),
        ("ingest", &["--storage-nodes", "--replication-factor", "--ha-replica-label"]),
        ("query", &["--storage-nodes", "--replication-factor", "--query.timeout"]),
        ("alerter", &["--rule-files", "--query-url", "--remote-write-url", "--alertmanager-url"]),
    ];
    for (role, flags) in cases {
        let text = help(&[role]);
        for flag in common.iter().chain(flags.iter()) {
            assert!(text.contains(flag), "basin {role} --help lacks {flag}:\n{text}");
        }
    }
}

fn fails_with_2(args: &[&str], envs: &[(&str, &str)], needle: &str) {
    let out = basin().args(args).envs(envs.iter().copied()).output().expect("run basin");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?} should exit 2; stderr:\n{err}");
    assert!(err.contains(needle), "{args:?}: stderr should name {needle:?}:\n{err}");
}

#[test]
fn bad_flags_and_values_exit_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    fails_with_2(&["standalone", "--no-such-flag"], &[], "--no-such-flag");
    fails_with_2(
        &["ingest", "--storage-nodes", "a:1", "--replication-factor", "x"],
        &[],
        "replication-factor",
    );
    fails_with_2(
        &["ingest", "--storage-nodes", "a:1,b:2", "--replication-factor", "3"],
        &[],
        "replication_factor",
    );
    fails_with_2(&["ingest", "--storage-nodes", "nohostport"], &[], "storage_nodes");
    fails_with_2(&["standalone", "--retention", "30 days"], &[], "retention");
    fails_with_2(&["standalone", "--log-format", "xml"], &[], "log_format");
    fails_with_2(&["standalone"], &[("BASIN_HTTP_LISTEN", "nonsense")], "http_listen");
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "replicaton_factor = 2\n").unwrap();
    fails_with_2(&["standalone", "--config", cfg.to_str().unwrap()], &[], "replicaton_factor");
    let cfg = dir.path().join("bad.yaml");
    std::fs::write(&cfg, "query_timeout: soon\n").unwrap();
    fails_with_2(&["standalone", "--config", cfg.to_str().unwrap()], &[], "query_timeout");
}

/// Starts standalone with the given args/env and returns the port `/ready` answered on.
fn ready_port(args: &[&str], envs: &[(&str, &str)], candidates: &[u16]) -> u16 {
    let mut child =
        basin().args(args).envs(envs.iter().copied()).stderr(Stdio::null()).spawn().unwrap();
    let client = http();
    let port = wait_until("basin ready on one of the ports", Duration::from_secs(60), || {
        if let Ok(Some(s)) = child.try_wait() {
            panic!("basin exited early: {s}");
        }
        candidates.iter().copied().find(|p| {
            client
                .get(format!("http://127.0.0.1:{p}/ready"))
                .send()
                .is_ok_and(|r| r.status().is_success())
        })
    });
    let _ = child.kill();
    let _ = child.wait();
    port
}

#[test]
fn settings_precedence_file_then_env_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    let ports = [file_port, env_port, flag_port];
    let cfg = dir.path().join("basin.yaml");
    let data = dir.path().join("data");
    std::fs::write(
        &cfg,
        format!("http_listen: 127.0.0.1:{file_port}\ndata_dir: {}\n", data.display()),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let env_addr = format!("127.0.0.1:{env_port}");
    let flag_addr = format!("127.0.0.1:{flag_port}");
    assert_eq!(ready_port(&["standalone", "--config", cfg], &[], &ports), file_port);
    assert!(data.exists(), "data_dir from the config file is used");
    assert_eq!(
        ready_port(&["standalone", "--config", cfg], &[("BASIN_HTTP_LISTEN", &env_addr)], &ports),
        env_port
    );
    assert_eq!(
        ready_port(
            &["standalone", "--config", cfg, "--http-listen", &flag_addr],
            &[("BASIN_HTTP_LISTEN", &env_addr)],
            &ports
        ),
        flag_port
    );
    // No subcommand means standalone.
    assert_eq!(ready_port(&["--config", cfg], &[], &ports), file_port);
}

#[test]
fn unrelated_basin_environment_variables_are_not_settings() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let data = dir.path().join("d");
    let data = data.to_str().unwrap();
    let envs = [("BASIN_CONFORMANCE_DIR", "/elsewhere"), ("BASIN_HTTP_LISTEN", addr.as_str())];
    assert_eq!(ready_port(&["standalone", "--data-dir", data], &envs, &[port]), port);
}
