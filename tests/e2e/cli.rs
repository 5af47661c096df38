//! The command line as an operator meets it: configuration errors, the OpenAPI document,
//! migrations, and a graceful shutdown.

use std::process::Command;

use crate::support::Gateway;

fn inboxgw(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_inboxgw"));
    command
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

#[test]
fn bad_configuration_stops_start_up_with_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (key, value) in [
        ("INBOX_LISTEN", "8080"),
        ("DATABASE_URL", "mysql://db/inbox"),
        ("INBOX_PUBLIC_URL", "gateway.example.com"),
        ("INBOX_LOG_FORMAT", "xml"),
        ("INBOX_WEBHOOK_ALLOW_PRIVATE", "sometimes"),
        ("INBOX_ENCRYPTION_KEY", "too-short"),
        ("INBOX_TELEGRAM_API_BASE", "not a url"),
    ] {
        let output = inboxgw(dir.path(), &[(key, value)], &["serve"]);
        assert!(!output.status.success(), "{key}={value} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or_default();
        assert!(last.contains(key), "{key}={value}: {stderr}");
    }
    let output = inboxgw(
        dir.path(),
        &[("DATABASE_URL", "postgres://db/inbox")],
        &["serve"],
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("INBOX_ENCRYPTION_KEY"));
}

#[test]
fn the_openapi_command_prints_the_committed_document() {
    let dir = tempfile::tempdir().unwrap();
    let output = inboxgw(dir.path(), &[], &["openapi"]);
    assert!(output.status.success());
    let committed = std::fs::read_to_string(
        inbox_testkit::requirements::workspace_root().join("openapi/openapi.json"),
    )
    .unwrap();
    assert!(
        String::from_utf8(output.stdout).unwrap() == committed,
        "openapi/openapi.json is stale: run `cargo run --bin inboxgw -- openapi > openapi/openapi.json`"
    );
}

#[test]
fn migrate_creates_the_embedded_database_and_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let output = inboxgw(dir.path(), &[], &["migrate"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.path().join("data/inbox.db").exists());
    assert!(dir.path().join("data/encryption.key").exists());
    assert!(String::from_utf8_lossy(&output.stderr).contains("generated a new encryption key"));
    // A second run reuses the key silently.
    let output = inboxgw(dir.path(), &[], &["migrate"]);
    assert!(output.status.success());
    assert!(!String::from_utf8_lossy(&output.stderr).contains("generated a new encryption key"));
}

#[tokio::test]
async fn sigterm_stops_the_gateway_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut gateway = Gateway::start(dir.path(), false, &[]).await;
    let status = gateway.stop();
    assert!(status.success(), "exit status {status}\n{}", gateway.logs());
    assert!(gateway.logs().contains("stopped"));
}
