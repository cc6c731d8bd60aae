//! Golden tests: each `tests/golden/*.sql` runs against a fixed store and its output must equal
//! the `.out` file beside it. Each `tests/golden/*.cmd` holds xp arguments (one per line) whose
//! output must equal its `.out`. After an intended change, regenerate with
//! `UPDATE_GOLDEN=1 cargo test --test golden` and review the diff.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// A fixed store: labels of five real protocol ids, keypoints for two of them.
fn fixture(tmp: &Path) -> PathBuf {
    let store = tmp.join("store");
    let labels = write_labels(tmp, &[7, 9, 46, 298, 300]);
    xp_ok(
        &store,
        &["ingest", "imigue-labels", labels.to_str().unwrap()],
    );
    let a = write_openpose_video(tmp, 7, 3);
    let b = write_openpose_video(tmp, 298, 2);
    xp_ok(
        &store,
        &[
            "ingest",
            "openpose",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
        ],
    );
    store
}

fn check(expected_path: &Path, actual: &str, failures: &mut Vec<String>) {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    match std::fs::read_to_string(expected_path) {
        Ok(expected) if expected == actual => {}
        Ok(_) if update => std::fs::write(expected_path, actual).unwrap(),
        Err(_) if update => std::fs::write(expected_path, actual).unwrap(),
        Ok(expected) => failures.push(format!(
            "{} differs.\n--- expected\n{expected}\n--- actual\n{actual}",
            expected_path.display()
        )),
        Err(_) => failures.push(format!(
            "{} is missing (run with UPDATE_GOLDEN=1). Output:\n{actual}",
            expected_path.display()
        )),
    }
}

#[test]
fn golden_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let store = fixture(tmp.path());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("sql" | "cmd")))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 4,
        "golden cases missing from {}",
        dir.display()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let text = std::fs::read_to_string(case).unwrap();
        let args: Vec<String> = if case.extension().unwrap() == "sql" {
            vec!["sql".into(), text.trim().to_string()]
        } else {
            text.lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        };
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = xp_ok(&store, &refs);
        check(&case.with_extension("out"), &out, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
