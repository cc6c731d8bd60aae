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

/// Sleeps here if `XP_PAUSE_AT=<point>:<milliseconds>` names this point: the concurrency tests
/// use it to hold a process inside a critical window while another one runs.
pub fn pause_point(name: &str) {
    static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
    let target = TARGET.get_or_init(|| {
        let text = std::env::var("XP_PAUSE_AT").ok()?;
        let (point, ms) = text.rsplit_once(':')?;
        Some((point.to_string(), ms.parse().ok()?))
    });
    if let Some((point, ms)) = target
        && point == name
    {
        std::thread::sleep(std::time::Duration::from_millis(*ms));
    }
}

/// Reached by `xp gc` after it has decided what to delete, before it deletes.
pub const GC_DECIDED: &str = "gc-decided";

/// Reached by `xp embed` right after each commit of a few videos' vectors.
pub const EMBED_COMMITTED: &str = "embed-committed";

/// Reached by `xp run` right after a run's results are committed.
pub const RUN_COMMITTED: &str = "run-committed";

/// The crash points, in the order a commit passes them.
pub const COMMIT_POINTS: &[&str] = &[
    "staged",
    "parts-published",
    "manifests-written",
    "log-entry-written",
];
