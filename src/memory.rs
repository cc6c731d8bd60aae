//! The process's peak resident memory (Linux `VmHWM`), which the benchmarks report.

/// Peak resident memory in MiB, or None where `/proc/self/status` does not say (not Linux).
pub fn peak_mib() -> Option<f64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn peak_memory_is_known_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(super::peak_mib().is_some_and(|m| m > 0.0));
        }
    }
}
