//! What a test does when something it needs (a PostgreSQL or Redis binary, a Python package)
//! is missing on this machine: with `CI=true` it fails, loudly; elsewhere it says so on stderr
//! and skips, so a developer without PostgreSQL can still run the rest of the suite.

use std::path::{Path, PathBuf};

/// Whether a missing requirement must fail the test (`CI=true`, or `INBOX_REQUIRE_SERVICES=1`).
pub fn requirements_are_mandatory() -> bool {
    let truthy = |name: &str| {
        std::env::var(name)
            .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
            .unwrap_or(false)
    };
    truthy("CI") || truthy("INBOX_REQUIRE_SERVICES")
}

/// Reports a missing requirement: panics when requirements are mandatory, otherwise prints a
/// loud notice and returns, so the caller can skip.
///
/// # Panics
/// When [`requirements_are_mandatory`] is true.
pub fn missing(what: &str, how_to_fix: &str) {
    if requirements_are_mandatory() {
        panic!("required test dependency missing: {what}. {how_to_fix}");
    }
    eprintln!(
        "\n*** SKIPPED: {what} is missing. {how_to_fix} (with CI=true this is a failure) ***\n"
    );
}

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/inbox-testkit sits two levels below the workspace root")
        .to_path_buf()
}

/// The Python interpreter of the test virtualenv: `INBOX_TEST_PYTHON`, else `.venv/bin/python`
/// under the workspace root (made by `scripts/test`). `None` (after [`missing`]) when absent.
pub fn python() -> Option<PathBuf> {
    let python = std::env::var_os("INBOX_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/python"));
    if python.exists() {
        Some(python)
    } else {
        missing(
            &format!("the test Python ({})", python.display()),
            "Run `scripts/test`, which creates .venv with the packages in tests/python/requirements.txt",
        );
        None
    }
}
