//! Computes the code fingerprint that is part of every run id (see `src/experiment/identity.rs`).
//!
//! It is the blake3 of the source files that can change a result (how examples are read and
//! normalised, the models, the training loop, how runs are resolved, the protocols) and of the
//! locked versions of the crates that do the arithmetic. Comment lines and unit-test modules
//! are left out, so documentation and test changes keep every run id; any other change to these
//! files makes `xp run` train again.

use std::fs;
use std::path::{Path, PathBuf};

/// Source that shapes results: folders (every `.rs` below them) and single files.
const RESULT_SOURCES: &[&str] = &[
    "src/dataset",
    "src/model",
    "src/train",
    "src/lanes.rs",
    "src/protocol.rs",
    "src/experiment/spec.rs",
    "src/experiment/identity.rs",
    "src/experiment/runner.rs",
];

/// Crates whose version can change the numbers a run produces (the tensor arithmetic, its
/// random numbers).
const NUMERIC_CRATES: &[&str] = &["burn", "cubecl", "gemm", "macerator", "rand", "libm"];

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = fs::read_dir(path)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", path.display()))
            .map(|e| e.expect("readable folder entry").path())
            .collect();
        entries.sort();
        for entry in entries {
            rust_files(&entry, out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// The code of a source file without comment lines, blank lines or its unit-test module.
fn code_lines(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if trimmed == "#[cfg(test)]" && lines.peek().is_some_and(|n| n.trim() == "mod tests {") {
            break; // the unit tests close every file that has them
        }
        if trimmed.is_empty() || trimmed.starts_with("//") {
            continue;
        }
        out.push_str(trimmed);
        out.push('\n');
    }
    out
}

/// The `[[package]]` entries of Cargo.lock for the numeric crates.
fn numeric_locks(lock: &str) -> String {
    let mut out = String::new();
    for entry in lock.split("[[package]]") {
        let name = entry
            .lines()
            .find_map(|l| l.strip_prefix("name = "))
            .map(|n| n.trim_matches('"'))
            .unwrap_or_default();
        if NUMERIC_CRATES
            .iter()
            .any(|c| name == *c || name.starts_with(&format!("{c}-")))
        {
            let version = entry
                .lines()
                .find_map(|l| l.strip_prefix("version = "))
                .unwrap_or_default();
            out.push_str(&format!("{name} {version}\n"));
        }
    }
    out
}

fn main() {
    let mut files = Vec::new();
    for source in RESULT_SOURCES {
        println!("cargo:rerun-if-changed={source}");
        rust_files(Path::new(source), &mut files);
    }
    println!("cargo:rerun-if-changed=Cargo.lock");
    let mut hasher = blake3::Hasher::new();
    for file in &files {
        let text = fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let code = code_lines(&text);
        // Name and length first, so that moving code between files changes the fingerprint.
        for part in [file.to_string_lossy().replace('\\', "/"), code] {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
    }
    let lock = fs::read_to_string("Cargo.lock").unwrap_or_default();
    hasher.update(numeric_locks(&lock).as_bytes());
    println!(
        "cargo:rustc-env=XP_CODE_FINGERPRINT={}",
        hasher.finalize().to_hex()
    );
}
