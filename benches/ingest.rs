//! Ingest and read-back benchmark (a plain binary: `cargo bench --bench ingest`).
//!
//! Measures, on this machine:
//! - OpenPose JSON ingest: frames per second and the process's peak memory (VmHWM), on copies of
//!   the real video-298 sample when `../shared` is present, else on synthetic demo frames;
//! - keypoint-table (CSV) ingest on the synthetic demo tables;
//! - reading one video's full keypoint sequence back, through SQL and straight from its part.
//!
//! Each ingest runs as its own `xp` process so its peak memory is its own.
//! Options (environment): XP_BENCH_COPIES (copies of video 298, default 8).

mod common;

use common::{timed, xp};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn labels_for(dir: &Path, videos: &[i32]) -> PathBuf {
    let mut text = String::from(
        "video_id,label_id,start_time,start_frame,end_time,end_frame,class,subject_id,subject_gender,subject_nationality,win_or_lose\n",
    );
    for v in videos {
        text.push_str(&format!("{v},1,0.4,10,1.2,30,4,22,M,United States,Win\n"));
    }
    let p = dir.join("labels.csv");
    std::fs::write(&p, text).unwrap();
    p
}

fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    let copies: i32 = std::env::var("XP_BENCH_COPIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let tmp = tempfile::tempdir().unwrap();
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/imigue");

    // --- OpenPose JSON ---
    let src = tmp.path().join("json");
    let (frames, source) = if shared.is_dir() {
        let file = std::fs::File::open(shared.join("openpose_298_head.tar.zst")).unwrap();
        let dec = zstd::stream::read::Decoder::new(file).unwrap();
        let unpack = tmp.path().join("unpack");
        tar::Archive::new(dec).unpack(&unpack).unwrap();
        let frames_dir = unpack.join("Data/skeleton/raw/298");
        let mut n = 0;
        for c in 0..copies {
            let video = 1000 + c;
            let dir = src.join(video.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            for e in std::fs::read_dir(&frames_dir).unwrap() {
                let p = e.unwrap().path();
                let name = p.file_name().unwrap().to_string_lossy().replacen(
                    "298_",
                    &format!("{video}_"),
                    1,
                );
                std::fs::copy(&p, dir.join(name)).unwrap();
                n += 1;
            }
        }
        (
            n,
            format!("{copies} copies of the real 3,000-frame video 298"),
        )
    } else {
        eprintln!("../shared is absent: using synthetic JSON frames instead of the real sample");
        let out = Command::new(env!("CARGO_BIN_EXE_xp"))
            .args([
                "--quiet",
                "demo",
                "--no-ingest",
                "--videos",
                "20",
                "--json-videos",
                "20",
                "--frame-scale",
                "0.2",
                "--out",
            ])
            .arg(&src)
            .output()
            .unwrap();
        assert!(out.status.success());
        let n = walk_count(&src.join("openpose"));
        (n, "synthetic demo JSON (20 videos)".to_string())
    };
    let store = tmp.path().join("store");
    let ids: Vec<i32> = (1000..1000 + copies).collect();
    let labels = labels_for(tmp.path(), &ids);
    let mut c = xp(&store);
    c.args(["ingest", "imigue-labels"]).arg(&labels);
    timed(c);
    let mut c = xp(&store);
    c.args(["ingest", "openpose", "--allow-unknown-videos"])
        .arg(&src);
    let (secs, peak) = timed(c);
    println!(
        "openpose JSON ingest: {frames} frames ({source}) in {secs:.2} s = {:.0} frames/s, peak memory {peak:.0} MiB",
        frames as f64 / secs
    );

    // --- keypoint tables (synthetic demo) ---
    let demo = tmp.path().join("demo");
    let out = Command::new(env!("CARGO_BIN_EXE_xp"))
        .args([
            "--quiet",
            "demo",
            "--no-ingest",
            "--json-videos",
            "0",
            "--out",
        ])
        .arg(&demo)
        .output()
        .unwrap();
    assert!(out.status.success());
    let store2 = tmp.path().join("store2");
    let mut c = xp(&store2);
    c.args(["ingest", "imigue-labels"])
        .arg(demo.join("labels.csv"));
    timed(c);
    let tables: Vec<PathBuf> = std::fs::read_dir(demo.join("keypoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let bytes: u64 = tables
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    let mut c = xp(&store2);
    c.args(["ingest", "openpose-table"]).args(&tables);
    let (secs, peak) = timed(c);
    let frames = count_rows(&store2);
    println!(
        "keypoint-table ingest: {} files, {frames} frames, {:.0} MiB of CSV in {secs:.2} s = {:.0} frames/s, peak memory {peak:.0} MiB",
        tables.len(),
        bytes as f64 / 1048576.0,
        frames as f64 / secs
    );

    // --- reading one video back ---
    let store_handle = xp::store::Store::open(&store).unwrap();
    let head = store_handle.head().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ctx = rt
        .block_on(xp::query::session(&store_handle, &head.snapshot_id))
        .unwrap();
    let q = "SELECT frame, body, face, hand_left, hand_right FROM keypoints WHERE video_id = 1000 ORDER BY frame";
    let mut best = f64::MAX;
    let mut rows = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let (_, batches) = rt.block_on(xp::query::run(&ctx, q)).unwrap();
        best = best.min(t.elapsed().as_secs_f64());
        rows = batches.iter().map(|b| b.num_rows()).sum::<usize>();
    }
    println!(
        "read one video via SQL: {rows} frames x 411 values in {:.1} ms (best of 5) = {:.0} frames/s",
        best * 1e3,
        rows as f64 / best
    );
    let tables = store_handle.tables_of(&head.snapshot).unwrap();
    let part = tables["keypoints"]
        .parts
        .iter()
        .find(|p| p.key == "video=1000")
        .unwrap()
        .clone();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let batches = xp::store::part::read_all(&store_handle.part_path(&part.file)).unwrap();
        best = best.min(t.elapsed().as_secs_f64());
        rows = batches.iter().map(|b| b.num_rows()).sum::<usize>();
    }
    println!(
        "read one video's part directly: {rows} frames in {:.1} ms (best of 5) = {:.0} frames/s",
        best * 1e3,
        rows as f64 / best
    );
}

fn walk_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|es| {
            es.map(|e| {
                let p = e.unwrap().path();
                if p.is_dir() { walk_count(&p) } else { 1 }
            })
            .sum()
        })
        .unwrap_or(0)
}

fn count_rows(store: &Path) -> u64 {
    let s = xp::store::Store::open(store).unwrap();
    let head = s.head().unwrap();
    s.tables_of(&head.snapshot).unwrap()["keypoints"].rows()
}
