//! Helpers shared by the integration tests: run the `xp` binary, fingerprint a store folder,
//! find the real data in `../shared`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `xp` with its store set to `store` and no progress bars.
pub fn xp(store: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xp"));
    cmd.env("XP_STORE", store)
        .env_remove("XP_CRASH_AT")
        .arg("--quiet");
    // Run beside the store, so files xp writes by default (reports/, demo-data/) land in the
    // test's temporary folder, not in the source tree.
    if let Some(dir) = store.parent().filter(|d| d.is_dir()) {
        cmd.current_dir(dir);
    }
    cmd
}

/// Runs `xp` and returns stdout, panicking with stderr on failure.
pub fn xp_ok(store: &Path, args: &[&str]) -> String {
    let out = xp(store).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "xp {args:?} failed ({:?}):\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn xp_out(store: &Path, args: &[&str]) -> Output {
    xp(store).args(args).output().unwrap()
}

/// Every file under `dir` with the blake3 of its bytes: two equal maps mean the folder is
/// byte-for-byte the same.
pub fn fingerprint(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(base).unwrap().to_path_buf();
            if p.is_dir() {
                out.insert(rel.clone(), "<dir>".into());
                walk(base, &p, out);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.insert(rel, blake3::hash(&bytes).to_hex().to_string());
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

/// `../shared` beside the project, if present.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
    dir.join("data/imigue").is_dir().then_some(dir)
}

/// The shared data, or a loud skip (a failure under CI, where it must be present).
pub fn require_shared(test: &str) -> Option<PathBuf> {
    match shared_dir() {
        Some(d) => Some(d),
        None => {
            let msg = format!(
                "SKIPPED {test}: ../shared/data/imigue is absent, so the real-data check did not run"
            );
            if std::env::var_os("CI").is_some() {
                panic!("{msg} (CI must have it)");
            }
            eprintln!("{msg}");
            None
        }
    }
}

/// Extracts the real 3,000 frames of video 298 into `dest`; returns the frame folder.
pub fn extract_298(shared: &Path, dest: &Path) -> PathBuf {
    let archive = shared.join("data/imigue/openpose_298_head.tar.zst");
    let file = std::fs::File::open(&archive).unwrap();
    let decoder = zstd::stream::read::Decoder::new(file).unwrap();
    tar::Archive::new(decoder).unpack(dest).unwrap();
    dest.join("Data/skeleton/raw/298")
}

pub const LABEL_HEADER: &str = "video_id,label_id,start_time,start_frame,end_time,end_frame,class,subject_id,subject_gender,subject_nationality,win_or_lose\n";

/// A small label file for videos 1..=n.
pub fn write_labels(dir: &Path, videos: &[i32]) -> PathBuf {
    let mut text = String::from(LABEL_HEADER);
    for &v in videos {
        let label = if v % 2 == 0 { "Lose" } else { "Win" };
        text.push_str(&format!("{v},1,0.4,10,1.2,30,4,{v},M,Spain,{label}\n"));
        text.push_str(&format!("{v},2,2.0,50,3.0,75,99,{v},M,Spain,{label}\n"));
    }
    let p = dir.join("labels.csv");
    std::fs::write(&p, text).unwrap();
    p
}

/// The value at index `i` of a stream of [`openpose_frame`]: coordinates `base + off + i * 0.5`,
/// and every third value (a confidence, in OpenPose's [0, 1]) one of 0.0, 0.1, ..., 0.9.
pub fn openpose_value(base: f32, off: f32, i: usize) -> f32 {
    if i % 3 == 2 {
        ((base as usize + i) % 10) as f32 / 10.0
    } else {
        base + off + i as f32 * 0.5
    }
}

/// One OpenPose frame file with one person (values from [`openpose_value`]).
pub fn openpose_frame(base: f32) -> String {
    let stream = |n: usize, off: f32| {
        (0..n)
            .map(|i| format!("{}", openpose_value(base, off, i)))
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        "{{\"version\":1.3,\"people\":[{{\"person_id\":[-1],\"pose_keypoints_2d\":[{}],\"face_keypoints_2d\":[{}],\"hand_left_keypoints_2d\":[{}],\"hand_right_keypoints_2d\":[{}],\"pose_keypoints_3d\":[]}}]}}",
        stream(75, 0.0),
        stream(210, 1.0),
        stream(63, 2.0),
        stream(63, 3.0)
    )
}

/// A folder with `frames` JSON frames of `video`.
pub fn write_openpose_video(dir: &Path, video: i32, frames: usize) -> PathBuf {
    let folder = dir.join(format!("op{video}"));
    std::fs::create_dir_all(&folder).unwrap();
    for f in 0..frames {
        std::fs::write(
            folder.join(format!("{video}_{f:012}_keypoints.json")),
            openpose_frame(f as f32),
        )
        .unwrap();
    }
    folder
}

/// Whether `python3` can import `modules` (comma-separated). When it cannot, the test is
/// skipped with a message saying so, unless `require_var` is set (as `.ci/run` does after
/// installing them): then the test fails.
pub fn python_with(modules: &str, test: &str, require_var: &str) -> bool {
    let probe = std::process::Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output();
    if matches!(&probe, Ok(o) if o.status.success()) {
        return true;
    }
    let msg = format!(
        "SKIPPED {test}: python3 with {modules} is not installed (pip install {})",
        modules.replace(',', "")
    );
    if std::env::var_os(require_var).is_some() {
        panic!("{msg}, but {require_var} is set");
    }
    eprintln!("{msg}");
    false
}

/// Runs a Python script with arguments and returns its stdout; panics with stderr on failure.
pub fn run_python(script: &str, args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A small demo store: 60 videos, short sequences.
pub fn demo_store(dir: &Path) -> PathBuf {
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
