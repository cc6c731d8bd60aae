//! Crash points for the crash-safety tests.
//!
//! Setting `XP_CRASH_AT=<point>` makes the process abort (no destructors, no cleanup: as close to
//! a power cut or `kill -9` as a process can do to itself) when it reaches that point. Tests use
//! it to stop a commit between every pair of its steps. Unset, it costs one cached lookup.

use std::sync::OnceLock;

/// Aborts the process here if `XP_CRASH_AT` names this point.
pub fn crash_point(name: &str) {
    static TARGET: OnceLock<Option<String>> = OnceLock::new();
    let target = TARGET.get_or_init(|| std::env::var("XP_CRASH_AT").ok());
    if target.as_deref() == Some(name) {
        eprintln!("xp: crashing at {name} (XP_CRASH_AT)");
        std::process::abort();
    }
}

/// Reached by `xp run` right after a run's results are committed.
pub const RUN_COMMITTED: &str = "run-committed";

/// The crash points, in the order a commit passes them.
pub const COMMIT_POINTS: &[&str] = &[
    "staged",
    "parts-published",
    "manifests-written",
    "log-entry-written",
];
