//! `xp run` end to end on a small synthetic store: the grid, skipping what is done,
//! determinism, regeneration, resuming after a kill, and the report commands.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A small demo store: 60 videos, short sequences.
fn demo_store(dir: &Path) -> PathBuf {
    let store = dir.join("store");
    xp_ok(
        &store,
        &[
            "demo",
            "--out",
            dir.join("demo").to_str().unwrap(),
            "--videos",
            "60",
            "--frame-scale",
            "0.01",
            "--json-videos",
            "1",
        ],
    );
    store
}

fn tiny() -> String {
    fixture("tiny.yaml").to_string_lossy().into_owned()
}

fn metrics_csv(store: &Path) -> String {
    xp_ok(
        store,
        &[
            "sql",
            "SELECT r.variant, r.seed, m.epoch, m.split, m.name, m.value FROM metrics m \
             JOIN runs r USING (run_id) ORDER BY 1, 2, 3, 4, 5",
            "--format",
            "csv",
        ],
    )
}

#[test]
fn run_grid_skip_determinism_regenerate() {
    let tmp = tempfile::tempdir().unwrap();
    let store = demo_store(tmp.path());
    let reports = tmp.path().join("reports");
    let out = xp_ok(
        &store,
        &["run", &tiny(), "--report-dir", reports.to_str().unwrap()],
    );
    // 2 backbones x pseudo-labels off/on x 2 seeds.
    assert!(out.contains("trained 8 runs, 0 already done"), "{out}");
    // "On" runs train on the pool videos the demo's labeler labelled; "off" runs do not.
    let pseudo = xp_ok(
        &store,
        &[
            "sql",
            "SELECT variant, MIN(pseudo_videos) AS lo, MAX(pseudo_videos) AS hi FROM runs \
             GROUP BY variant ORDER BY variant",
            "--format",
            "csv",
        ],
    );
    for line in pseudo.lines().skip(1) {
        let f: Vec<&str> = line.rsplitn(3, ',').collect();
        let (hi, lo): (i32, i32) = (f[0].parse().unwrap(), f[1].parse().unwrap());
        if line.contains("pseudo_labels=true") {
            assert!(lo > 0, "{pseudo}");
        } else {
            assert_eq!((lo, hi), (0, 0), "{pseudo}");
        }
    }
    assert!(
        out.contains("backbone=mlp") && out.contains("backbone=gcn"),
        "{out}"
    );
    assert!(out.contains("SYNTHETIC"), "{out}");
    for f in ["leaderboard.md", "leaderboard.svg", "curves.svg"] {
        assert!(reports.join("tiny").join(f).is_file(), "{f} missing");
    }

    // A second invocation trains nothing.
    let again = xp_ok(&store, &["run", &tiny()]);
    assert!(again.contains("trained 0 runs, 8 already done"), "{again}");
    let dry = xp_ok(&store, &["run", &tiny(), "--dry-run"]);
    assert_eq!(dry.matches(" done").count(), 8, "{dry}");

    // Results are queryable and join with the data.
    let joined = xp_ok(
        &store,
        &[
            "sql",
            "SELECT COUNT(*) AS n FROM predictions p JOIN videos v USING (video_id) \
             JOIN splits s ON s.video_id = p.video_id AND s.protocol = 'imigue-emotion' \
             WHERE s.split = 'test' AND p.label = v.label",
            "--format",
            "csv",
        ],
    );
    let n: usize = joined.lines().nth(1).unwrap().parse().unwrap();
    assert!(n > 0, "{joined}");

    // Determinism: the same config, seed and data in another store give identical numbers.
    let tmp2 = tempfile::tempdir().unwrap();
    let store2 = demo_store(tmp2.path());
    xp_ok(&store2, &["run", &tiny()]);
    assert_eq!(metrics_csv(&store), metrics_csv(&store2));

    // The Markdown leaderboard is stable byte for byte (training times differ between stores,
    // so compare two renderings of one store).
    let md1 = xp_ok(&store, &["leaderboard", "tiny", "--format", "md"]);
    let md2 = xp_ok(&store, &["leaderboard", "tiny", "--format", "md"]);
    assert_eq!(md1, md2);
    assert!(
        md1.starts_with("### tiny") && md1.contains("| 1 | backbone="),
        "{md1}"
    );

    // Regeneration re-runs everything from scratch and finds every number identical.
    let regen = xp_ok(&store, &["leaderboard", "tiny", "--regenerate"]);
    assert!(regen.contains("every number is identical"), "{regen}");

    // show and diff.
    let runs = xp_ok(&store, &["runs", "--experiment", "tiny"]);
    let ids: Vec<String> = runs
        .lines()
        .filter(|l| l.contains("backbone="))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 8, "{runs}");
    let show = xp_ok(&store, &["show", &ids[0]]);
    assert!(
        show.contains("confusion matrix") && show.contains("learning curve"),
        "{show}"
    );
    let diff = xp_ok(&store, &["diff", &ids[0], &ids[1]]);
    assert!(diff.contains("seed") || diff.contains("backbone"), "{diff}");
    assert!(
        !diff.contains("train.lr"),
        "equal keys are not shown: {diff}"
    );
}

#[test]
fn killed_run_resumes_the_grid() {
    let tmp = tempfile::tempdir().unwrap();
    let store = demo_store(tmp.path());
    // The process dies (abort, no clean-up) right after its first run is committed.
    let out = xp(&store)
        .env("XP_CRASH_AT", xp::fault::RUN_COMMITTED)
        .args(["run", &tiny()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(xp_out(&store, &["verify"]).status.code(), Some(0));
    let out = xp_ok(&store, &["run", &tiny()]);
    assert!(out.contains("trained 7 runs, 1 already done"), "{out}");

    // And a SIGKILL from outside at some moment of a run: whatever was committed stays.
    let tmp = tempfile::tempdir().unwrap();
    let store = demo_store(tmp.path());
    let bin = assert_cmd::cargo::cargo_bin("xp");
    let mut child = std::process::Command::new(&bin)
        .env("XP_STORE", &store)
        .args(["--quiet", "run", &tiny(), "--set", "train.epochs=6"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let count = || -> usize {
        let out = xp_out(
            &store,
            &["sql", "SELECT COUNT(*) AS n FROM runs", "--format", "csv"],
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.parse().ok())
            .unwrap_or(0)
    };
    while count() == 0 && started.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(xp_out(&store, &["verify"]).status.code(), Some(0));
    let done = count();
    assert!(done >= 1);
    let out = xp_ok(&store, &["run", &tiny(), "--set", "train.epochs=6"]);
    assert!(
        out.contains(&format!("trained {} runs, {done} already done", 8 - done)),
        "{out}"
    );
}

#[test]
fn experiment_file_errors_name_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let cases: [(&str, &str, &[&str]); 6] = [
        (
            "unknown key",
            "name: x\nseeds: [0]\ntrain:\n  epochs: 2\n  learning_rate: 0.1\n",
            &["bad.yaml", "learning_rate", "line 5"],
        ),
        (
            "bad type",
            "name: x\nseeds: [0]\ntrain:\n  epochs: many\n",
            &["bad.yaml", "train.epochs", "line 4"],
        ),
        (
            "empty grid",
            "name: x\nseeds: [0]\ngrid:\n  train.epochs: []\n",
            &["bad.yaml:4", "grid.train.epochs", "no values"],
        ),
        (
            "grid key that does not exist",
            "name: x\nseeds: [0]\ngrid:\n  model.keypoints.backbne: [mlp]\n",
            &["bad.yaml:4", "model.keypoints.backbne", "not a setting"],
        ),
        (
            "bad grid value",
            "name: x\nseeds: [0]\ngrid:\n  model.keypoints.backbone: [mlp, transformer]\n",
            &["bad.yaml", "transformer"],
        ),
        ("no seeds", "name: x\nseeds: []\n", &["bad.yaml", "seeds"]),
    ];
    for (what, text, needles) in cases {
        let path = tmp.path().join("bad.yaml");
        std::fs::write(&path, text).unwrap();
        let out = xp_out(&store, &["run", path.to_str().unwrap(), "--dry-run"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{what}: {stderr}");
        for n in needles {
            assert!(stderr.contains(n), "{what}: error lacks `{n}`:\n{stderr}");
        }
    }
}
