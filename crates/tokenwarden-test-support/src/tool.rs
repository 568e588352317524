//! A program a test needs from the system (Debian's `prometheus`, `chromium`, ...): found on PATH,
//! or the test is skipped loudly; under CI (the `CI` variable set, as `.ci/run` does) a missing
//! program fails the test instead.

use std::path::PathBuf;

/// Where `name` is installed, or `None` (after saying so on stderr) when it is not and this is not
/// CI.
///
/// # Panics
/// Under CI when `name` is not installed.
pub fn installed(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is not installed, and CI must run this test: install it (.ci/run does)"
        );
        eprintln!("\n*** SKIPPED: {name} is not installed; this test did not run ***\n");
    }
    found
}
