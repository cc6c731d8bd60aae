//! What the ingest benchmarks share: running the `xp` binary and reading its peak memory.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// `xp` on `store`, reporting its peak memory on exit, without progress bars.
pub fn xp(store: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xp"));
    c.env("XP_STORE", store)
        .env("XP_PEAK_MEMORY", "1")
        .arg("--quiet");
    c
}

/// Runs xp; returns (seconds, peak MiB reported by the process). Panics if xp fails.
pub fn timed(mut cmd: Command) -> (f64, f64) {
    let t = Instant::now();
    let out = cmd.output().expect("xp runs");
    let secs = t.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let peak = stderr
        .lines()
        .find_map(|l| l.strip_prefix("xp: peak memory "))
        .and_then(|v| v.trim_end_matches(" MiB").parse().ok())
        .unwrap_or(f64::NAN);
    (secs, peak)
}
