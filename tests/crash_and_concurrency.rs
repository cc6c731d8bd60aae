//! A killed writer never leaves a half-written snapshot, and concurrent writers never lose a
//! write. Snapshot ids depend only on content, so "the old or the new snapshot" is checked
//! against ids computed by a reference run in another store.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use common::*;

fn head(store: &Path) -> String {
    let out = xp_ok(store, &["tables"]);
    out.lines()
        .next()
        .unwrap()
        .trim_start_matches("snapshot ")
        .to_string()
}

fn verify_ok(store: &Path) {
    let out = xp_out(store, &["verify"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Inputs {
    labels: PathBuf,
    first: PathBuf,
    second: Vec<PathBuf>,
}

fn inputs(tmp: &Path, frames: usize) -> Inputs {
    let labels = write_labels(tmp, &[1, 2, 3, 4, 5]);
    let first = write_openpose_video(tmp, 1, 4);
    let second = (2..=4)
        .map(|v| write_openpose_video(tmp, v, frames))
        .collect();
    Inputs {
        labels,
        first,
        second,
    }
}

/// The store before the interrupted ingest: labels and video 1.
fn base_store(store: &Path, inp: &Inputs) {
    xp_ok(
        store,
        &["ingest", "imigue-labels", inp.labels.to_str().unwrap()],
    );
    xp_ok(store, &["ingest", "openpose", inp.first.to_str().unwrap()]);
}

fn second_args(inp: &Inputs) -> Vec<String> {
    let mut args = vec!["ingest".to_string(), "openpose".into()];
    args.extend(inp.second.iter().map(|p| p.to_string_lossy().into_owned()));
    args
}

/// (old, new) snapshot ids, from an uninterrupted reference run.
fn reference(tmp: &Path, inp: &Inputs) -> (String, String) {
    let store = tmp.join("reference");
    base_store(&store, inp);
    let old = head(&store);
    let args = second_args(inp);
    xp_ok(&store, &args.iter().map(String::as_str).collect::<Vec<_>>());
    (old, head(&store))
}

#[test]
fn crash_between_every_commit_step() {
    let tmp = tempfile::tempdir().unwrap();
    let inp = inputs(tmp.path(), 20);
    let (old, new) = reference(tmp.path(), &inp);
    let args = second_args(&inp);
    for (i, point) in xp::fault::COMMIT_POINTS.iter().enumerate() {
        let store = tmp.path().join(format!("store-{point}"));
        base_store(&store, &inp);
        let out = xp(&store)
            .env("XP_CRASH_AT", point)
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "did not crash at {point}");
        verify_ok(&store);
        let after = head(&store);
        let last = i == xp::fault::COMMIT_POINTS.len() - 1;
        // Only the log entry makes a commit: before it, the old snapshot; after it, the new.
        assert_eq!(&after, if last { &new } else { &old }, "crash at {point}");
        // Garbage collection removes the leftovers, and the ingest then completes.
        xp_ok(&store, &["gc"]);
        verify_ok(&store);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        xp_ok(&store, &refs);
        assert_eq!(head(&store), new);
        assert!(
            std::fs::read_dir(store.join("staging"))
                .unwrap()
                .next()
                .is_none(),
            "staging not empty after a clean ingest"
        );
    }
}

#[test]
fn sigkill_at_many_moments() {
    let tmp = tempfile::tempdir().unwrap();
    let inp = inputs(tmp.path(), 400);
    let (old, new) = reference(tmp.path(), &inp);
    let args = second_args(&inp);

    // How long an uninterrupted ingest takes here, to spread the kills over it.
    let timing = tmp.path().join("timing");
    base_store(&timing, &inp);
    let t0 = Instant::now();
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    xp_ok(&timing, &refs);
    let full = t0.elapsed();

    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_xp"));
    let mut seen_old = 0;
    let mut seen_new = 0;
    for step in 0..16u32 {
        let store = tmp.path().join(format!("store-{step}"));
        base_store(&store, &inp);
        let delay = full.mul_f64(step as f64 / 12.0);
        let mut child = std::process::Command::new(&bin)
            .env("XP_STORE", &store)
            .arg("--quiet")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        verify_ok(&store);
        let after = head(&store);
        assert!(
            after == old || after == new,
            "after a kill at {delay:?} the store shows snapshot {after}, neither old nor new"
        );
        if after == old {
            seen_old += 1;
        } else {
            seen_new += 1;
        }
    }
    eprintln!("kills that left the old snapshot: {seen_old}, the new one: {seen_new}");
    assert!(
        seen_old > 0,
        "no kill landed before the commit; the test proves nothing"
    );
    // The last kills come after a whole ingest's time: the new snapshot must be there whole.
    assert!(
        seen_new > 0,
        "no ingest finished, even given 1.25x its time"
    );
}

#[test]
fn concurrent_ingests_all_land() {
    let tmp = tempfile::tempdir().unwrap();
    let inp = inputs(tmp.path(), 30);
    // The sequential result, for comparison: content-addressed ids make order irrelevant.
    let reference = tmp.path().join("reference");
    base_store(&reference, &inp);
    for dir in &inp.second {
        xp_ok(&reference, &["ingest", "openpose", dir.to_str().unwrap()]);
    }
    let expected = head(&reference);

    for round in 0..3 {
        let store = tmp.path().join(format!("store-{round}"));
        base_store(&store, &inp);
        let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_xp"));
        let store_clone = store.clone();
        let handles: Vec<_> = inp
            .second
            .iter()
            .cloned()
            .map(|dir| {
                let bin = bin.clone();
                let store = store_clone.clone();
                std::thread::spawn(move || {
                    std::process::Command::new(bin)
                        .env("XP_STORE", &store)
                        .args(["--quiet", "ingest", "openpose"])
                        .arg(dir)
                        .output()
                        .unwrap()
                })
            })
            .collect();
        for h in handles {
            let out = h.join().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        verify_ok(&store);
        assert_eq!(head(&store), expected, "round {round}: a write was lost");
    }
}

/// gc beside writers never leaves a snapshot pointing at a deleted part. The dangerous writer
/// re-ingests data whose part is in the store but unreferenced (a candidate for gc), so it
/// reuses the file instead of writing it; gc is held between deciding and deleting, and the
/// writer starts inside that window.
#[test]
fn gc_beside_writers_never_leaves_a_dangling_part() {
    let tmp = tempfile::tempdir().unwrap();
    let inp = inputs(tmp.path(), 12);
    let store = tmp.path().join("store");
    base_store(&store, &inp);
    let other = write_openpose_video(&tmp.path().join("other"), 1, 9);
    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_xp"));
    let mut collected = 0;
    for round in 0..4 {
        // Video 1 from `other`: the part of `inp.first` is now unreferenced, then the reverse.
        let (away, back) = if round % 2 == 0 {
            (&other, &inp.first)
        } else {
            (&inp.first, &other)
        };
        xp_ok(&store, &["ingest", "openpose", away.to_str().unwrap()]);
        let gc = std::process::Command::new(&bin)
            .env("XP_STORE", &store)
            .env("XP_PAUSE_AT", format!("{}:1500", xp::fault::GC_DECIDED))
            .args(["--quiet", "gc", "--keep", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(400));
        // Brings back the unreferenced part while gc is about to delete it.
        let writer = xp_out(&store, &["ingest", "openpose", back.to_str().unwrap()]);
        assert!(
            writer.status.success(),
            "{}",
            String::from_utf8_lossy(&writer.stderr)
        );
        let gc = gc.wait_with_output().unwrap();
        collected += usize::from(gc.status.success());
        verify_ok(&store);
    }
    // gc got its turn (it is not simply refused whenever a writer exists).
    assert!(collected > 0, "gc never ran");

    // And free-running: gc and writers in a loop, each round verified.
    for round in 0..6 {
        let gc_store = store.clone();
        let bin = bin.clone();
        let gc = std::thread::spawn(move || {
            for _ in 0..3 {
                let _ = std::process::Command::new(&bin)
                    .env("XP_STORE", &gc_store)
                    .args(["--quiet", "gc", "--keep", "1"])
                    .output()
                    .unwrap();
            }
        });
        let dir = if round % 2 == 0 { &other } else { &inp.first };
        xp_ok(&store, &["ingest", "openpose", dir.to_str().unwrap()]);
        gc.join().unwrap();
        verify_ok(&store);
    }
}
