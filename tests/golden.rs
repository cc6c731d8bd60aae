//! Golden tests: each `tests/golden/*.sql` runs against a fixed store and its output must equal
//! the `.out` file beside it. Each `tests/golden/*.cmd` holds xp arguments (one per line) whose
//! output must equal its `.out`. After an intended change, regenerate with
//! `UPDATE_GOLDEN=1 cargo test --test golden` and review the diff.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// A fixed store: labels of five real protocol ids, keypoints for two of them, and a little of
/// every other modality.
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
    let srt = tmp.join("7.srt");
    std::fs::write(
        &srt,
        "1\n00:00:00,000 --> 00:00:02,000\nHow do you feel?\n\n2\n00:00:02,500 --> 00:00:04,000\nTired, but happy.\n",
    )
    .unwrap();
    xp_ok(&store, &["ingest", "transcripts", srt.to_str().unwrap()]);
    let crops = tmp.join("crops");
    std::fs::create_dir_all(crops.join("7")).unwrap();
    let img = |shade: u8| {
        let img =
            image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([shade, x as u8 * 16, y as u8 * 16]));
        xp::ingest::images::encode_jpeg(&img, 90)
    };
    std::fs::write(crops.join("7/000000.jpg"), img(10)).unwrap();
    std::fs::write(crops.join("7/000001.jpg"), img(10)).unwrap();
    std::fs::write(crops.join("7/000002.jpg"), img(200)).unwrap();
    xp_ok(
        &store,
        &[
            "ingest",
            "crops",
            "--from",
            "crops",
            crops.to_str().unwrap(),
        ],
    );
    let npy = tmp.join("7.npy");
    xp::ingest::npy::write_f32(&npy, &[3, 4], &[0.5; 12]).unwrap();
    xp_ok(
        &store,
        &[
            "ingest",
            "embeddings",
            "--model",
            "toy",
            "--dim",
            "4",
            npy.to_str().unwrap(),
        ],
    );
    let jsonl = tmp.join("vlm.jsonl");
    std::fs::write(
        &jsonl,
        "{\"video_id\": 298, \"label\": \"win\", \"confidence\": 0.9, \"prompt\": \"P\"}\n\
         {\"video_id\": 300, \"label\": \"win\", \"confidence\": 0.6, \"prompt\": \"P\"}\n",
    )
    .unwrap();
    xp_ok(
        &store,
        &[
            "ingest",
            "pseudo-labels",
            jsonl.to_str().unwrap(),
            "--labeler",
            "vlm-a",
        ],
    );
    std::fs::write(&jsonl, "{\"video_id\": 300, \"label\": \"lose\"}\n").unwrap();
    xp_ok(
        &store,
        &[
            "ingest",
            "pseudo-labels",
            jsonl.to_str().unwrap(),
            "--labeler",
            "vlm-b",
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
