//! Other readers can read the store: pyarrow and DuckDB each read every part of a store that
//! holds every modality and run results, and the rows they read for each table equal the rows
//! `xp sql` returns. `.ci/run` installs both and sets XP_REQUIRE_PYARROW=1, so CI cannot skip it.

mod common;

use common::*;

/// Reads the store with pyarrow and DuckDB, independently of xp's reader, and compares every
/// table with xp's own answer (`SELECT *` exported as Parquet, read back with pyarrow).
const SCRIPT: &str = r#"
import glob, json, os, sys
import duckdb
import pyarrow.parquet as pq

store, exports = sys.argv[1], sys.argv[2]

def norm(v):
    if isinstance(v, (list, tuple)):
        return [norm(x) for x in v]
    if isinstance(v, memoryview):
        return bytes(v)
    if isinstance(v, dict):
        return {k: norm(x) for k, x in v.items()}
    return v

def rows_sorted(rows):
    return sorted((norm(r) for r in rows), key=repr)

# Every part file, referenced or not, opens in both readers.
parts = sorted(glob.glob(store + "/parts/*.parquet"))
con = duckdb.connect()
for p in parts:
    assert pq.read_table(p).num_rows >= 0
    con.sql(f"SELECT COUNT(*) FROM read_parquet('{p}')").fetchall()

log = max(os.listdir(store + "/log"))
snapshot_id = json.load(open(f"{store}/log/{log}"))["snapshot"]
snapshot = json.load(open(f"{store}/snapshots/{snapshot_id}.json"))
report = {"parts": len(parts), "tables": {}}
for table, version in sorted(snapshot["tables"].items()):
    files = [f"{store}/parts/{p['file']}.parquet"
             for p in json.load(open(f"{store}/tables/{version}.json"))["parts"]]
    arrow_rows = []
    for f in files:
        arrow_rows += pq.read_table(f).to_pylist()
    rel = con.sql("SELECT * FROM read_parquet([" + ", ".join(f"'{f}'" for f in files) + "])")
    names = rel.columns
    duck_rows = [dict(zip(names, r)) for r in rel.fetchall()]
    xp_rows = pq.read_table(f"{exports}/{table}.parquet").to_pylist()
    xp_sorted = rows_sorted(xp_rows)
    report["tables"][table] = {
        "rows": len(xp_rows),
        "parts": len(files),
        "pyarrow_equal": rows_sorted(arrow_rows) == xp_sorted,
        "duckdb_equal": rows_sorted(duck_rows) == xp_sorted,
    }
print(json.dumps(report))
"#;

/// The stored tables (every layout but `builtin`): each must be covered.
const TABLES: &[&str] = &[
    "clips",
    "crops",
    "embeddings",
    "frames",
    "keypoints",
    "metrics",
    "predictions",
    "pseudo_labels",
    "runs",
    "text_embeddings",
    "transcripts",
    "videos",
    "weights",
];

#[test]
fn pyarrow_and_duckdb_read_every_part_as_xp_does() {
    if !python_with(
        "pyarrow, duckdb",
        "pyarrow_and_duckdb_read_every_part_as_xp_does",
        "XP_REQUIRE_PYARROW",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    xp_ok(
        &store,
        &[
            "demo",
            "--out",
            tmp.path().join("demo").to_str().unwrap(),
            "--videos",
            "24",
            "--frame-scale",
            "0.01",
            "--json-videos",
            "1",
        ],
    );
    let tiny = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny.yaml");
    xp_ok(
        &store,
        &[
            "run",
            tiny.to_str().unwrap(),
            "--set",
            "model.keypoints.backbone=mlp",
            "--set",
            "seeds=[0]",
        ],
    );
    let exports = tmp.path().join("exports");
    std::fs::create_dir_all(&exports).unwrap();
    for table in TABLES {
        let file = exports.join(format!("{table}.parquet"));
        xp_ok(
            &store,
            &[
                "sql",
                &format!("SELECT * FROM {table}"),
                "--format",
                "parquet",
                "--output",
                file.to_str().unwrap(),
            ],
        );
    }
    let out = run_python(
        SCRIPT,
        &[store.to_str().unwrap(), exports.to_str().unwrap()],
    );
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let tables = report["tables"].as_object().unwrap();
    let names: Vec<&str> = tables.keys().map(String::as_str).collect();
    assert_eq!(names, TABLES, "every stored table is covered: {report}");
    for (table, r) in tables {
        assert!(
            r["rows"].as_u64().unwrap() > 0,
            "{table} is empty: {report}"
        );
        assert_eq!(
            r["pyarrow_equal"], true,
            "{table}: pyarrow differs: {report}"
        );
        assert_eq!(r["duckdb_equal"], true, "{table}: DuckDB differs: {report}");
    }
    assert!(report["parts"].as_u64().unwrap() >= TABLES.len() as u64);
}
