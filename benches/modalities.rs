//! Crop and embedding ingest benchmark (a plain binary: `cargo bench --bench modalities`).
//!
//! Shows that ingest memory stays flat as the input grows: each case runs at two sizes (the
//! larger four times the smaller), each as its own `xp` process so its peak memory (VmHWM) is
//! its own. Inputs are synthetic and generated before timing starts:
//! - crops cut from 640x360 JPEG frames with one YOLO box per frame;
//! - ready-made 224x224 JPEG crops (DINOv2's input size);
//! - DINOv2-base-sized embeddings: one `.npy` [3000, 768] float32 per video, and one
//!   `.safetensors` file holding every video (float16).
//!
//! Options (environment): XP_BENCH_SCALE (multiplies every size, default 1).

mod common;

use common::{timed, xp};
use std::path::Path;

use image::{Rgb, RgbImage};
use xp::ingest::images::encode_jpeg;
use xp::ingest::{npy, safetensors_file};

const FRAMES_PER_VECTOR_FILE: usize = 3000;
const DIM: usize = 768;

fn dir_bytes(dir: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        n += if p.is_dir() {
            dir_bytes(&p)
        } else {
            std::fs::metadata(&p).unwrap().len()
        };
    }
    n
}

/// A frame with texture (so JPEG sizes are realistic) and a moving bright "person".
fn frame(video: u32, f: u32) -> (RgbImage, [f32; 4]) {
    let (w, h) = (640u32, 360u32);
    let px = 200 + (f * 3 + video * 17) % 200;
    let img = RgbImage::from_fn(w, h, |x, y| {
        let inside = (px..px + 160).contains(&x) && (60..340).contains(&y);
        let t = (x * 7 + y * 13 + f * 5 + video * 31) % 97;
        if inside {
            Rgb([200, 150 + (t as u8 % 50), 120])
        } else {
            Rgb([(t * 2) as u8, (x / 3) as u8, (y / 2) as u8])
        }
    });
    let b = [
        (px as f32 + 80.0) / w as f32,
        200.0 / h as f32,
        160.0 / w as f32,
        280.0 / h as f32,
    ];
    (img, b)
}

fn write_frames(root: &Path, videos: u32, frames: u32) -> u64 {
    for v in 1..=videos {
        let dir = root.join(v.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..frames {
            let (img, b) = frame(v, f);
            std::fs::write(dir.join(format!("{f:06}.jpg")), encode_jpeg(&img, 85)).unwrap();
            let yolo = xp::ingest::boxes::write_yolo(&[(0, b, Some(0.9))]);
            std::fs::write(dir.join(format!("{f:06}.txt")), yolo).unwrap();
        }
    }
    u64::from(videos * frames)
}

fn write_ready_crops(root: &Path, videos: u32, frames: u32) -> u64 {
    for v in 1..=videos {
        let dir = root.join(v.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..frames {
            let img = RgbImage::from_fn(224, 224, |x, y| {
                let t = (x * 7919 + y * 104_729 + f * 31 + v * 17) % 251;
                Rgb([(x + t) as u8, (y * 2 + f) as u8, ((x ^ y) + t) as u8])
            });
            std::fs::write(dir.join(format!("{f:06}.jpg")), encode_jpeg(&img, 90)).unwrap();
        }
    }
    u64::from(videos * frames)
}

fn vectors(video: u32, rows: usize) -> Vec<f32> {
    (0..rows * DIM)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ video) as f32 / u32::MAX as f32 - 0.5)
        .collect()
}

fn write_npy(root: &Path, videos: u32) -> u64 {
    std::fs::create_dir_all(root).unwrap();
    for v in 1..=videos {
        let vals = vectors(v, FRAMES_PER_VECTOR_FILE);
        npy::write_f32(
            &root.join(format!("{v}.npy")),
            &[FRAMES_PER_VECTOR_FILE, DIM],
            &vals,
        )
        .unwrap();
    }
    u64::from(videos) * FRAMES_PER_VECTOR_FILE as u64
}

fn write_safetensors(path: &Path, videos: u32) -> u64 {
    let data: Vec<(String, Vec<f32>)> = (1..=videos)
        .map(|v| (v.to_string(), vectors(v, FRAMES_PER_VECTOR_FILE)))
        .collect();
    let shape = [FRAMES_PER_VECTOR_FILE, DIM];
    let tensors: Vec<(&str, &[usize], safetensors_file::TensorData)> = data
        .iter()
        .map(|(n, v)| (n.as_str(), &shape[..], safetensors_file::TensorData::F16(v)))
        .collect();
    safetensors_file::write(path, &tensors, None).unwrap();
    u64::from(videos) * FRAMES_PER_VECTOR_FILE as u64
}

struct Row {
    case: &'static str,
    input: String,
    items: u64,
    unit: &'static str,
    bytes: u64,
    secs: f64,
    peak: f64,
}

fn run(
    case: &'static str,
    unit: &'static str,
    items: u64,
    bytes: u64,
    store: &Path,
    args: &[&str],
) -> Row {
    let mut cmd = xp(store);
    cmd.args(args).arg("--allow-unknown-videos");
    let (secs, peak) = timed(cmd);
    Row {
        case,
        input: format!("{:.0} MiB", bytes as f64 / (1 << 20) as f64),
        items,
        unit,
        bytes,
        secs,
        peak,
    }
}

fn main() {
    let scale: u32 = std::env::var("XP_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let mut rows = Vec::new();
    for (size, factor) in [("small", 1u32), ("large", 4u32)] {
        let n = factor * scale;
        eprintln!("generating the {size} inputs ...");
        let frames_dir = t.join(format!("frames-{size}"));
        let frames = write_frames(&frames_dir, 2 * n, 500);
        let crops_dir = t.join(format!("crops-{size}"));
        let crops = write_ready_crops(&crops_dir, 4 * n, 500);
        let npy_dir = t.join(format!("npy-{size}"));
        let npy_vectors = write_npy(&npy_dir, 4 * n);
        let st = t.join(format!("all-{size}.safetensors"));
        let st_vectors = write_safetensors(&st, 4 * n);
        let npy_files: Vec<String> = (1..=4 * n)
            .map(|v| {
                npy_dir
                    .join(format!("{v}.npy"))
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();

        let store = t.join(format!("store-{size}"));
        eprintln!("ingesting the {size} inputs ...");
        rows.push(run(
            "crops from frames + YOLO boxes",
            "frames",
            frames,
            dir_bytes(&frames_dir),
            &store,
            &["ingest", "crops", frames_dir.to_str().unwrap()],
        ));
        rows.push(run(
            "ready-made crops",
            "crops",
            crops,
            dir_bytes(&crops_dir),
            &store,
            &[
                "ingest",
                "crops",
                "--from",
                "crops",
                crops_dir.to_str().unwrap(),
            ],
        ));
        let mut args = vec!["ingest", "embeddings", "--model", "dinov2-base"];
        args.extend(npy_files.iter().map(String::as_str));
        rows.push(run(
            "embeddings, .npy float32 per video",
            "vectors",
            npy_vectors,
            dir_bytes(&npy_dir),
            &store,
            &args,
        ));
        let st_store = t.join(format!("store-st-{size}"));
        rows.push(run(
            "embeddings, one .safetensors float16",
            "vectors",
            st_vectors,
            std::fs::metadata(&st).unwrap().len(),
            &st_store,
            &[
                "ingest",
                "embeddings",
                "--model",
                "dinov2-base",
                st.to_str().unwrap(),
            ],
        ));
        for dir in [&frames_dir, &crops_dir, &npy_dir] {
            std::fs::remove_dir_all(dir).unwrap();
        }
        std::fs::remove_file(&st).unwrap();
    }
    println!("| case | input | throughput | peak memory | time |");
    println!("|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} {} ({}) | {:.0} {}/s, {:.0} MiB/s | {:.0} MiB | {:.2} s |",
            r.case,
            r.items,
            r.unit,
            r.input,
            r.items as f64 / r.secs,
            r.unit,
            r.bytes as f64 / r.secs / (1 << 20) as f64,
            r.peak,
            r.secs
        );
    }
}
