use clap::Parser;

use xp::cli::Cli;
use xp::ingest::BadInput;

/// Exit code for input that xp refused (the store is unchanged).
const EXIT_BAD_INPUT: i32 = 3;

fn main() {
    xp::memory::keep_freed_memory();
    let cli = Cli::parse();
    let code = match xp::commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            if err.chain().any(|c| c.downcast_ref::<BadInput>().is_some()) {
                eprintln!("  (nothing was written: the store is unchanged)");
                EXIT_BAD_INPUT
            } else {
                1
            }
        }
    };
    if std::env::var_os("XP_PEAK_MEMORY").is_some() {
        report_peak_memory();
    }
    std::process::exit(code);
}

/// Prints the process's peak resident memory (Linux), for benchmarks.
fn report_peak_memory() {
    if let Some(mib) = xp::memory::peak_mib() {
        eprintln!("xp: peak memory {mib:.1} MiB");
    }
}
