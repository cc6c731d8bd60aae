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
    assert_eq!(pseudo.lines().count(), 5, "4 variants: {pseudo}");
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

    // Results join with the data, and the stored decisions and accuracies agree with the
    // stored probabilities and the gold labels of `videos` (an independent table).
    let check = xp_ok(
        &store,
        &[
            "sql",
            "SELECT COUNT(*) AS n, \
                    SUM(CASE WHEN p.label <> v.label THEN 1 ELSE 0 END) AS wrong_gold, \
                    SUM(CASE WHEN p.predicted <> (CASE WHEN p.prob_win >= r.threshold THEN 'win' ELSE 'lose' END) \
                        THEN 1 ELSE 0 END) AS wrong_decision, \
                    COUNT(DISTINCT p.run_id) AS runs \
             FROM predictions p JOIN videos v USING (video_id) JOIN runs r USING (run_id) \
             JOIN splits s ON s.video_id = p.video_id AND s.protocol = 'imigue-emotion' \
             WHERE s.split = 'test'",
            "--format",
            "csv",
        ],
    );
    let test_videos: usize = xp_ok(
        &store,
        &[
            "sql",
            "SELECT COUNT(*) FROM splits s JOIN video_frames f USING (video_id) \
             WHERE s.protocol = 'imigue-emotion' AND s.split = 'test'",
            "--format",
            "csv",
        ],
    )
    .lines()
    .nth(1)
    .unwrap()
    .parse()
    .unwrap();
    assert!(test_videos > 0);
    assert_eq!(
        check.lines().nth(1).unwrap(),
        format!("{},0,0,8", 8 * test_videos),
        "every run predicts every test video once, with the gold label: {check}"
    );
    // The stored test accuracy is the share of right decisions among the stored predictions.
    let accuracies = xp_ok(
        &store,
        &[
            "sql",
            "SELECT p.run_id, AVG(CASE WHEN p.predicted = v.label THEN 1.0 ELSE 0.0 END) AS recomputed, \
                    MAX(m.value) AS stored \
             FROM predictions p JOIN videos v USING (video_id) \
             JOIN metrics m ON m.run_id = p.run_id AND m.split = 'test' AND m.name = 'accuracy' \
             GROUP BY p.run_id",
            "--format",
            "csv",
        ],
    );
    assert_eq!(accuracies.lines().count(), 9, "{accuracies}");
    for line in accuracies.lines().skip(1) {
        let f: Vec<f64> = line
            .split(',')
            .skip(1)
            .map(|x| x.parse().unwrap())
            .collect();
        assert!((f[0] - f[1]).abs() < 1e-9, "{line}");
    }

    // Determinism: the same config, seed and data in another store give identical numbers,
    // also when two worker processes train the grid (each on its share of the cores).
    let tmp2 = tempfile::tempdir().unwrap();
    let store2 = demo_store(tmp2.path());
    let parallel = xp_out(&store2, &["run", &tiny(), "--jobs", "2"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&parallel.stdout),
        String::from_utf8_lossy(&parallel.stderr),
    );
    assert!(parallel.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("trained 8 runs, 0 already done"),
        "{stdout}"
    );
    // Each run trained by exactly one worker (the workers' reports are relayed on stderr).
    assert_eq!(stderr.matches("finished ").count(), 8, "{stderr}");
    assert_eq!(metrics_csv(&store), metrics_csv(&store2));
    let predictions = |store: &Path| {
        xp_ok(
            store,
            &[
                "sql",
                "SELECT r.variant, r.seed, p.video_id, p.prob_win, r.threshold \
                 FROM predictions p JOIN runs r USING (run_id) ORDER BY 1, 2, 3",
                "--format",
                "csv",
            ],
        )
    };
    assert_eq!(predictions(&store), predictions(&store2));

    // The Markdown leaderboard is stable byte for byte (training times differ between stores,
    // so compare two renderings of one store).
    let md1 = xp_ok(&store, &["leaderboard", "tiny", "--format", "md"]);
    let md2 = xp_ok(&store, &["leaderboard", "tiny", "--format", "md"]);
    assert_eq!(md1, md2);
    assert!(
        md1.starts_with("### tiny") && md1.contains("| 1 | backbone="),
        "{md1}"
    );
    // Paired intervals for the 4 pairs that differ in one grid key (not the 2 diagonals),
    // each over both seeds.
    assert!(md1.contains("paired differences in test accuracy"), "{md1}");
    assert_eq!(md1.matches(" | 2 x ").count(), 4, "{md1}");

    // Regeneration re-runs everything from scratch and finds every number identical.
    let regen = xp_ok(&store, &["leaderboard", "tiny", "--regenerate"]);
    assert!(
        regen.contains("regenerated 8 runs from scratch: every number is identical"),
        "{regen}"
    );
    // And it does see a change: regenerate one run with another seed's settings.
    let opened = xp::store::Store::open(&store).unwrap();
    let head = opened.head().unwrap();
    let stored = xp::experiment::results::read_runs(&opened, &head.snapshot).unwrap();
    let (a, b) = (&stored[0], &stored[1]);
    assert_ne!(a.seed, b.seed);
    let mut forged = a.clone();
    forged.config = b.config.clone();
    let diffs = xp::experiment::regenerate::regenerate(&opened, &[forged], &|_| {}).unwrap();
    assert!(
        !diffs.is_empty(),
        "a run regenerated with another seed matched"
    );

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
    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_xp"));
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
    let cases: [(&str, &str, &[&str]); 7] = [
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
        (
            "negative pseudo-label weight",
            "name: x\nseeds: [0]\ntrain:\n  pseudo_labels: { use: true, weight: -0.5 }\n",
            &["bad.yaml", "train.pseudo_labels.weight must be positive"],
        ),
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

/// Keypoint-only MLP runs without pseudo-labels: the quickest real runs.
const MLP_ONLY: [&str; 4] = [
    "--set",
    "model.keypoints.backbone=mlp",
    "--set",
    "train.pseudo_labels.use=false",
];

fn args<'a>(head: &[&'a str], tail: &[&'a str]) -> Vec<&'a str> {
    head.iter().chain(tail).copied().collect()
}

/// Data rows of a Markdown leaderboard.
fn board_rows(md: &str) -> Vec<&str> {
    md.lines()
        .filter(|l| l.starts_with("| ") && l[2..].starts_with(|c: char| c.is_ascii_digit()))
        .collect()
}

#[test]
fn runs_of_other_code_or_an_older_config_are_never_mixed_in() {
    let tmp = tempfile::tempdir().unwrap();
    let store = demo_store(tmp.path());
    let tiny = tiny();
    // Runs made by another build of xp (another code fingerprint), same settings and data.
    let out = xp(&store)
        .env("XP_TEST_CODE_FINGERPRINT", "0ldc0de0ldc0de")
        .args(args(&["run", &tiny], &MLP_ONLY))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // This build marks them, hides them from the board, and refuses to "regenerate" them.
    let runs = xp_ok(&store, &["runs"]);
    assert_eq!(runs.matches("OTHER 0ldc0de").count(), 2, "{runs}");
    assert!(runs.contains("2 runs were made by other code"), "{runs}");
    let board = xp_ok(&store, &["leaderboard", "tiny", "--format", "md"]);
    assert!(board_rows(&board).is_empty(), "{board}");
    assert!(
        board.contains("2 runs from other code (another build of xp) are hidden; `--all`"),
        "{board}"
    );
    let regen = xp_out(&store, &["leaderboard", "tiny", "--all", "--regenerate"]);
    let stderr = String::from_utf8_lossy(&regen.stderr);
    assert_eq!(regen.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot regenerate: 2 runs were made by other code")
            && stderr.contains("0ldc0de0ldc"),
        "{stderr}"
    );
    let regen = xp_out(&store, &["leaderboard", "tiny", "--regenerate"]);
    assert_eq!(
        regen.status.code(),
        Some(1),
        "nothing current to regenerate"
    );

    // Reusing them is a choice; by default this build trains them again.
    let dry = xp_ok(
        &store,
        &args(
            &["run", &tiny, "--dry-run", "--reuse-other-code"],
            &MLP_ONLY,
        ),
    );
    assert_eq!(dry.matches("done by other code").count(), 2, "{dry}");
    let out = xp_ok(&store, &args(&["run", &tiny], &MLP_ONLY));
    assert!(out.contains("trained 2 runs, 0 already done"), "{out}");

    // An edited setting: new runs, and the board keeps the two configurations apart.
    let out = xp_ok(
        &store,
        &args(&["run", &tiny, "--set", "train.epochs=3"], &MLP_ONLY),
    );
    assert!(out.contains("trained 2 runs, 0 already done"), "{out}");
    let board = xp_ok(&store, &["leaderboard", "tiny", "--format", "md"]);
    let rows = board_rows(&board);
    assert_eq!(rows.len(), 1, "{board}");
    assert!(
        rows[0].starts_with("| 1 | default | 2 |"),
        "two seeds, not four: {board}"
    );
    assert!(
        board.contains("4 runs from an older configuration or other code (2 by other code)"),
        "{board}"
    );
    let all = xp_ok(&store, &["leaderboard", "tiny", "--all", "--format", "md"]);
    let rows = board_rows(&all);
    assert_eq!(rows.len(), 3, "{all}");
    assert!(rows.iter().all(|r| r.contains(" | 2 | ")), "{all}");
    assert_eq!(all.matches("[other code 0ldc0de0]").count(), 1, "{all}");

    // Named by its file, the board shows exactly what the file resolves to now (epochs 2):
    // the runs `--set` made for its mlp / no-pseudo-label cell are the same computations (same
    // ids) as the file's own, so they are its only finished cell; the epochs-3 runs and those
    // of the other code are not.
    let by_file = xp_ok(&store, &["leaderboard", &tiny, "--format", "md"]);
    let rows = board_rows(&by_file);
    assert_eq!(rows.len(), 1, "{by_file}");
    assert!(rows[0].starts_with("| 1 | default | 2 |"), "{by_file}");
    assert!(
        by_file.contains("4 runs from an older configuration or other code"),
        "{by_file}"
    );

    // Another experiment that adds a seed to the same settings trains only that seed, and its
    // board counts the two runs `tiny` made for it as well: three seeds, not one.
    let more = tmp.path().join("tiny_more.yaml");
    let text = std::fs::read_to_string(&tiny).unwrap();
    let text = text
        .replace("name: tiny\n", "name: tiny_more\n")
        .replace("seeds: [0, 1]", "seeds: [0, 1, 2]");
    assert!(text.contains("name: tiny_more") && text.contains("[0, 1, 2]"));
    std::fs::write(&more, text).unwrap();
    let more = more.to_string_lossy().into_owned();
    let out = xp_ok(&store, &args(&["run", &more], &MLP_ONLY));
    assert!(out.contains("trained 1 runs, 2 already done"), "{out}");
    let board = xp_ok(&store, &["leaderboard", &more, "--format", "md"]);
    let rows = board_rows(&board);
    assert_eq!(rows.len(), 1, "{board}");
    assert!(rows[0].contains(" | 3 | "), "three seeds: {board}");
}

#[test]
fn a_test_video_without_keypoints_fails_the_run_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let demo = tmp.path().join("demo");
    xp_ok(
        &store,
        &[
            "demo",
            "--out",
            demo.to_str().unwrap(),
            "--videos",
            "60",
            "--frame-scale",
            "0.01",
            "--json-videos",
            "0",
            "--no-ingest",
        ],
    );
    xp_ok(
        &store,
        &[
            "ingest",
            "imigue-labels",
            demo.join("labels.csv").to_str().unwrap(),
        ],
    );
    // Every keypoint table but the first test video's.
    let test_ids = xp::protocol::IMIGUE_EMOTION.test;
    let mut tables: Vec<std::path::PathBuf> = std::fs::read_dir(demo.join("keypoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    tables.sort();
    let id_of =
        |p: &std::path::Path| -> i32 { p.file_stem().unwrap().to_str().unwrap().parse().unwrap() };
    let left_out = tables
        .iter()
        .position(|p| test_ids.contains(&id_of(p)))
        .expect("a test video");
    let missing_id = id_of(&tables.remove(left_out));
    let mut ingest = vec!["ingest".to_string(), "openpose-table".to_string()];
    ingest.extend(tables.iter().map(|p| p.to_string_lossy().into_owned()));
    let ingest: Vec<&str> = ingest.iter().map(String::as_str).collect();
    xp_ok(&store, &ingest);

    let tiny = tiny();
    let one_seed = ["--set", "seeds=[0]"];
    let out = xp_out(&store, &args(&args(&["run", &tiny], &MLP_ONLY), &one_seed));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("videos lack inputs this run reads")
            && stderr.contains(&format!("1 test without keypoints ({missing_id})"))
            && stderr.contains("data.allow_missing: true"),
        "{stderr}"
    );
    assert!(xp_ok(&store, &["runs"]).contains("no runs stored yet"));

    // Opted in: the run trains, records what it left out, and the board shows it.
    let allowed = args(
        &args(&["run", &tiny], &MLP_ONLY),
        &["--set", "seeds=[0]", "--set", "data.allow_missing=true"],
    );
    xp_ok(&store, &allowed);
    let missing = xp_ok(
        &store,
        &["sql", "SELECT missing_videos FROM runs", "--format", "csv"],
    );
    assert_eq!(missing, "missing_videos\n1\n");
    let predicted = xp_ok(
        &store,
        &[
            "sql",
            &format!("SELECT COUNT(*) FROM predictions WHERE video_id = {missing_id}"),
            "--format",
            "csv",
        ],
    );
    assert!(predicted.ends_with("\n0\n"), "{predicted}");
    let board = xp_ok(&store, &["leaderboard", "tiny", "--format", "md"]);
    assert!(board.contains("videos left out"), "{board}");
    assert!(board_rows(&board)[0].contains(" | 1 | "), "{board}");
}
