//! The store commands end to end: init, tables, log, verify, gc, and what sql refuses.

mod common;

use std::path::Path;

use common::*;

fn small_store(tmp: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(tmp).unwrap();
    let store = tmp.join("store");
    let labels = write_labels(tmp, &[1, 2, 3]);
    xp_ok(
        &store,
        &["ingest", "imigue-labels", labels.to_str().unwrap()],
    );
    for v in [1, 2] {
        let dir = write_openpose_video(tmp, v, 6);
        xp_ok(&store, &["ingest", "openpose", dir.to_str().unwrap()]);
    }
    store
}

#[test]
fn init_is_idempotent_and_commands_need_a_store() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    let out = xp_out(&store, &["tables"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no xp store at"));
    assert!(xp_ok(&store, &["init"]).contains("created an empty store"));
    let before = fingerprint(&store);
    assert!(xp_ok(&store, &["init"]).contains("already holds a store"));
    assert_eq!(fingerprint(&store), before);
    assert!(xp_ok(&store, &["log"]).contains("no commits yet"));
}

#[test]
fn tables_and_log_describe_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let store = small_store(tmp.path());
    let tables = xp_ok(&store, &["tables"]);
    let row = |name: &str| {
        tables
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} row in\n{tables}"))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(row("videos")[1], "3");
    assert_eq!(row("clips")[1], "6");
    assert_eq!(row("keypoints")[1], "12");
    assert_eq!(row("keypoints")[3], "2", "one part per video");

    let log = xp_ok(&store, &["log"]);
    let first_op = log
        .lines()
        .position(|l| l.contains("ingest imigue-labels"))
        .unwrap();
    let last_op = log
        .lines()
        .position(|l| l.contains("ingest openpose"))
        .unwrap();
    assert!(last_op < first_op, "newest first:\n{log}");
    assert!(log.contains("keypoints: +6 rows (6 -> 12)"), "{log}");
    // Older snapshots stay readable.
    let at1 = xp_ok(
        &store,
        &[
            "sql",
            "SELECT COUNT(*) AS n FROM keypoints",
            "--snapshot",
            "@1",
            "--format",
            "csv",
        ],
    );
    assert_eq!(at1, "n\n0\n");
    let at2 = xp_ok(
        &store,
        &[
            "sql",
            "SELECT COUNT(*) AS n FROM keypoints",
            "--snapshot",
            "@2",
            "--format",
            "csv",
        ],
    );
    assert_eq!(at2, "n\n6\n");
}

#[test]
fn relabelling_replaces_only_the_videos_in_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let store = small_store(tmp.path());
    let p = tmp.path().join("fix.csv");
    std::fs::write(
        &p,
        format!("{LABEL_HEADER}2,1,0.4,10,1.2,30,7,9,F,Italy,Win\n"),
    )
    .unwrap();
    xp_ok(&store, &["ingest", "imigue-labels", p.to_str().unwrap()]);
    let out = xp_ok(
        &store,
        &[
            "sql",
            "SELECT video_id, subject_id, label, clips FROM videos ORDER BY video_id",
            "--format",
            "csv",
        ],
    );
    assert_eq!(
        out,
        "video_id,subject_id,label,clips\n1,1,win,2\n2,9,win,1\n3,3,win,2\n"
    );
    let clips = xp_ok(
        &store,
        &[
            "sql",
            "SELECT COUNT(*) AS n FROM clips WHERE video_id = 2",
            "--format",
            "csv",
        ],
    );
    assert_eq!(clips, "n\n1\n");
}

#[test]
fn verify_names_a_damaged_part_and_exits_4() {
    let tmp = tempfile::tempdir().unwrap();
    let store = small_store(tmp.path());
    assert_eq!(xp_out(&store, &["verify"]).status.code(), Some(0));
    let part = std::fs::read_dir(store.join("parts"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&part).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&part, bytes).unwrap();
    let out = xp_out(&store, &["verify"]);
    assert_eq!(out.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let name = part.file_name().unwrap().to_string_lossy();
    assert!(stderr.contains(name.as_ref()), "{stderr}");

    // A damaged manifest is caught too, and so is an edited log entry.
    let store2 = small_store(&tmp.path().join("b"));
    let log = store2.join("log/0000000001.json");
    let text = std::fs::read_to_string(&log)
        .unwrap()
        .replace("imigue-labels", "imigue-labelz");
    std::fs::write(&log, text).unwrap();
    let out = xp_out(&store2, &["verify"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("0000000001.json"));
}

#[test]
fn gc_removes_only_unreferenced_files() {
    let tmp = tempfile::tempdir().unwrap();
    let store = small_store(tmp.path());
    let before = fingerprint(&store);
    // Nothing is garbage in a store of clean commits.
    let out = xp_ok(&store, &["gc"]);
    assert!(out.contains("removed 0 files"), "{out}");
    assert_eq!(fingerprint(&store), before);

    // Replace video 1's keypoints: the old part is still referenced by older snapshots...
    let dir = tmp.path().join("v1b");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("1_000000000000_keypoints.json"),
        openpose_frame(9.0),
    )
    .unwrap();
    xp_ok(&store, &["ingest", "openpose", dir.to_str().unwrap()]);
    assert!(xp_ok(&store, &["gc"]).contains("removed 0 files"));
    // ...until only the newest snapshot is kept.
    let out = xp_ok(&store, &["gc", "--keep", "1", "--dry-run"]);
    assert!(out.contains("would remove"), "{out}");
    let out = xp_ok(&store, &["gc", "--keep", "1"]);
    assert!(!out.contains("removed 0 files"), "{out}");
    assert_eq!(xp_out(&store, &["verify"]).status.code(), Some(0));
    assert!(xp_ok(&store, &["log"]).contains("(collected)"));
    let n = xp_ok(
        &store,
        &[
            "sql",
            "SELECT COUNT(*) AS n FROM keypoints",
            "--format",
            "csv",
        ],
    );
    assert_eq!(n, "n\n7\n");
}

#[test]
fn sql_is_read_only() {
    let tmp = tempfile::tempdir().unwrap();
    let store = small_store(tmp.path());
    let before = fingerprint(&store);
    let target = tmp.path().join("out.parquet");
    for query in [
        format!("COPY videos TO '{}'", target.display()),
        "CREATE TABLE t AS SELECT 1".to_string(),
        "INSERT INTO videos SELECT * FROM videos".to_string(),
        "DROP TABLE videos".to_string(),
        format!(
            "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '{}'",
            tmp.path().display()
        ),
        "SET datafusion.execution.batch_size = 1".to_string(),
    ] {
        let out = xp_out(&store, &["sql", &query]);
        assert_eq!(out.status.code(), Some(1), "{query}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("read-only"), "{query}: {stderr}");
    }
    assert!(!target.exists());
    assert_eq!(fingerprint(&store), before);
}

#[test]
fn sql_output_formats() {
    let tmp = tempfile::tempdir().unwrap();
    let store = small_store(tmp.path());
    let q = "SELECT video_id, label FROM videos ORDER BY video_id LIMIT 2";
    assert_eq!(
        xp_ok(&store, &["sql", q, "--format", "csv"]),
        "video_id,label\n1,win\n2,lose\n"
    );
    assert_eq!(
        xp_ok(&store, &["sql", q, "--format", "json"]),
        "[{\"video_id\":1,\"label\":\"win\"},{\"video_id\":2,\"label\":\"lose\"}]"
    );
    assert_eq!(
        xp_ok(&store, &["sql", q, "--format", "jsonl"]),
        "{\"video_id\":1,\"label\":\"win\"}\n{\"video_id\":2,\"label\":\"lose\"}\n"
    );
    let table = xp_ok(&store, &["sql", q]);
    assert!(
        table.contains("video_id") && table.contains("lose") && table.contains("(2 rows)"),
        "{table}"
    );
    let out = tmp.path().join("r.parquet");
    xp_ok(
        &store,
        &[
            "sql",
            q,
            "--format",
            "parquet",
            "--output",
            out.to_str().unwrap(),
        ],
    );
    let back = xp::store::part::read_all(&out).unwrap();
    assert_eq!(back.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
    // A bad query is an error with DataFusion's explanation.
    let bad = xp_out(&store, &["sql", "SELECT nope FROM videos"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nope"));
}
