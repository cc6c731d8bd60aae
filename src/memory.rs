//! The process's peak resident memory (Linux `VmHWM`) and CPU time, which the benchmarks
//! report.

unsafe extern "C" {
    /// mimalloc's option setter (mimalloc.h), linked in through the `mimalloc` crate.
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in mimalloc.h's `mi_option_e` (v2 and v3 alike).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// Tells the allocator to keep the memory it frees for reuse instead of handing it back to the
/// OS after 10 ms (mimalloc's default). A training step frees and allocates the same large
/// arrays again and again; memory given back is faulted in and zeroed afresh next step, which
/// cost a quarter of an MLP step and half of a GCN step. The OS gets everything back at exit.
/// A `MIMALLOC_PURGE_DELAY` set by the user wins.
pub fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one integer option; valid at any time, from any thread.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

/// Peak resident memory in MiB, or None where `/proc/self/status` does not say (not Linux).
pub fn peak_mib() -> Option<f64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
}

/// User + system CPU seconds of this process so far (all threads), or None where
/// `/proc/self/stat` does not say (not Linux). Read as clock ticks of 1/100 s, the value of
/// `sysconf(_SC_CLK_TCK)` on every Linux architecture Rust supports.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn peak_memory_is_known_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(super::peak_mib().is_some_and(|m| m > 0.0));
        }
    }

    #[test]
    fn cpu_time_grows_with_work() {
        if cfg!(target_os = "linux") {
            let before = super::cpu_seconds().unwrap();
            let start = std::time::Instant::now();
            let mut x = 0u64;
            while start.elapsed().as_millis() < 300 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            let spent = super::cpu_seconds().unwrap() - before;
            assert!(
                (0.1..5.0).contains(&spent),
                "{spent} s of CPU for a 0.3 s busy loop"
            );
        }
    }
}
