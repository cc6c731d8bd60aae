//! Other Parquet readers can read the store: pyarrow reads every part and sees the same rows
//! and values. `.ci/run` installs pyarrow and sets XP_REQUIRE_PYARROW=1, so CI cannot skip it.

mod common;

use std::process::Command;

use common::*;

const SCRIPT: &str = r#"
import json, sys, glob
import pyarrow.parquet as pq
out = {}
for path in sorted(glob.glob(sys.argv[1] + "/parts/*.parquet")):
    t = pq.read_table(path)
    d = {"rows": t.num_rows, "columns": t.column_names}
    if "body" in t.column_names:
        body = t.column("body").to_pylist()
        d["body_sum"] = sum(sum(v) for v in body if v is not None)
        d["body_len"] = len(next(v for v in body if v is not None))
    out[path.rsplit("/", 1)[1]] = d
print(json.dumps(out))
"#;

#[test]
fn pyarrow_reads_every_part() {
    let probe = Command::new("python3")
        .args(["-c", "import pyarrow"])
        .output();
    if !matches!(&probe, Ok(o) if o.status.success()) {
        let msg = "SKIPPED pyarrow_reads_every_part: python3 with pyarrow is not installed \
                   (pip install pyarrow)";
        if std::env::var_os("XP_REQUIRE_PYARROW").is_some() {
            panic!("{msg}, but XP_REQUIRE_PYARROW is set");
        }
        eprintln!("{msg}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let labels = write_labels(tmp.path(), &[1, 2]);
    xp_ok(
        &store,
        &["ingest", "imigue-labels", labels.to_str().unwrap()],
    );
    let v = write_openpose_video(tmp.path(), 1, 4);
    xp_ok(&store, &["ingest", "openpose", v.to_str().unwrap()]);

    let out = Command::new("python3")
        .args(["-c", SCRIPT, store.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let parts = parsed.as_object().unwrap();
    assert_eq!(
        parts.len(),
        3,
        "videos, clips and one keypoint part: {parsed}"
    );
    let keypoints = parts
        .values()
        .find(|p| p.get("body_sum").is_some())
        .expect("a keypoint part");
    assert_eq!(keypoints["rows"], 4);
    assert_eq!(keypoints["body_len"], 75);
    // Frame f has body values f + i * 0.5 for i in 0..75.
    let expected: f64 = (0..4)
        .map(|f| (0..75).map(|i| f as f64 + i as f64 * 0.5).sum::<f64>())
        .sum();
    assert_eq!(keypoints["body_sum"].as_f64().unwrap(), expected);
}
