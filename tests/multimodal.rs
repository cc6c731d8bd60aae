//! Multimodal runs end to end on a small synthetic store: what a run's identity covers, and
//! what happens to videos that lack an input. (Pseudo-label settings are counted in
//! `pseudo_label_settings_change_what_is_trained_on`.)

mod common;

use std::path::Path;

use common::*;

fn experiment() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tiny_multimodal.yaml")
        .to_string_lossy()
        .into_owned()
}

/// Variant -> status from `xp run --dry-run`.
fn statuses(store: &Path) -> Vec<(String, String)> {
    let dry = xp_ok(store, &["run", &experiment(), "--dry-run"]);
    let mut out = Vec::new();
    for line in dry.lines() {
        let cells: Vec<&str> = line.split_whitespace().collect();
        if let Some(i) = cells.iter().position(|c| c.starts_with("modalities=")) {
            // run, variant, seed, data, [the stage-1 runs it starts from], status...
            let hex = |c: &&str| c.len() == 12 && c.chars().all(|ch| ch.is_ascii_hexdigit());
            let status: Vec<&str> = cells[i + 2..].iter().copied().skip_while(hex).collect();
            out.push((cells[i].to_string(), status.join(" ")));
        }
    }
    assert_eq!(out.len(), 3, "{dry}");
    out
}

fn status_of(statuses: &[(String, String)], variant: &str) -> String {
    statuses
        .iter()
        .find(|(v, _)| v == variant)
        .unwrap_or_else(|| panic!("no {variant} in {statuses:?}"))
        .1
        .clone()
}

/// One training video of the protocol that has image vectors.
fn a_video_with_vectors(store: &Path) -> String {
    xp_ok(
        store,
        &[
            "sql",
            "SELECT MIN(e.video_id) FROM embeddings e JOIN protocols p ON p.id = e.video_id \
             WHERE p.protocol = 'imigue-emotion' AND p.split = 'train'",
            "--format",
            "csv",
        ],
    )
    .lines()
    .nth(1)
    .unwrap()
    .trim()
    .to_string()
}

#[test]
fn a_run_is_identified_by_exactly_the_data_it_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let store = demo_store(tmp.path());
    xp_ok(&store, &["run", &experiment()]);
    let done = statuses(&store);
    assert!(done.iter().all(|(_, s)| s == "done"), "{done:?}");

    // Vectors of another image model: no run reads them, so no run changes.
    let video = a_video_with_vectors(&store);
    let other = tmp.path().join(format!("{video}.npy"));
    xp::ingest::npy::write_f32(&other, &[2, 4], &[0.5; 8]).unwrap();
    xp_ok(
        &store,
        &[
            "ingest",
            "embeddings",
            other.to_str().unwrap(),
            "--model",
            "tiny-vit",
            "--dim",
            "4",
        ],
    );
    let after_other = statuses(&store);
    assert!(
        after_other.iter().all(|(_, s)| s == "done"),
        "another model's vectors changed a run: {after_other:?}"
    );

    // New dinov2-base vectors for one video: the runs that read them are to run again; the
    // keypoint-only run is not.
    let dir = tmp.path().join("new");
    std::fs::create_dir_all(&dir).unwrap();
    let new = dir.join(format!("{video}.npy"));
    xp::ingest::npy::write_f32(&new, &[3, 768], &vec![0.25; 3 * 768]).unwrap();
    xp_ok(
        &store,
        &[
            "ingest",
            "embeddings",
            new.to_str().unwrap(),
            "--model",
            "dinov2-base",
            "--frame-stride",
            "16",
        ],
    );
    let after_new = statuses(&store);
    assert_eq!(status_of(&after_new, "modalities=keypoints"), "done");
    assert_eq!(status_of(&after_new, "modalities=image"), "to run");
    assert_eq!(
        status_of(&after_new, "modalities=keypoints+image+text"),
        "to run"
    );
}

#[test]
fn a_video_without_an_input_is_named_unless_the_run_masks_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = demo_store(tmp.path());
    // Only one video has `tiny-vit` vectors.
    let video = a_video_with_vectors(&store);
    let file = tmp.path().join(format!("{video}.npy"));
    xp::ingest::npy::write_f32(&file, &[2, 4], &[0.5; 8]).unwrap();
    xp_ok(
        &store,
        &[
            "ingest",
            "embeddings",
            file.to_str().unwrap(),
            "--model",
            "tiny-vit",
            "--dim",
            "4",
        ],
    );
    let before = fingerprint(&store);
    let run = |sets: &[&str]| {
        let mut args = vec!["run".to_string(), experiment()];
        for s in sets {
            args.push("--set".into());
            args.push(s.to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        xp_out(&store, &args)
    };
    let out = run(&[
        "model.modalities=[keypoints, image]",
        "model.image.embedding=tiny-vit",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("without `tiny-vit` image vectors"), "{err}");
    assert!(err.contains("data.missing_modality: mask"), "{err}");
    // It names videos, and not the one that has vectors.
    let listed = err
        .split("image vectors")
        .nth(1)
        .and_then(|rest| rest.split(['(', ')']).nth(1))
        .unwrap_or_else(|| panic!("no video list in {err}"));
    let ids: Vec<&str> = listed.split(", ").filter(|s| *s != "...").collect();
    assert!(
        !ids.is_empty() && ids.iter().all(|id| id.parse::<i32>().is_ok()),
        "{listed}"
    );
    assert!(!ids.contains(&video.as_str()), "{listed}");
    assert_eq!(
        before,
        fingerprint(&store),
        "a refused run changed the store"
    );

    // One modality cannot be masked: there would be nothing left to classify.
    let out = run(&[
        "model.modalities=[image]",
        "model.image.embedding=tiny-vit",
        "data.missing_modality=mask",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("needs at least two modalities"), "{err}");

    // Masked: the run trains, every video kept.
    let out = run(&[
        "model.modalities=[keypoints, image]",
        "model.image.embedding=tiny-vit",
        "data.missing_modality=mask",
        "train.schedule=joint",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Staged, the image branch's stage 1 would train on the one video that has vectors: it
    // refuses, and says which stage failed.
    let out = run(&[
        "model.modalities=[keypoints, image]",
        "model.image.embedding=tiny-vit",
        "data.missing_modality=mask",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("stage 1 of the image branch"), "{err}");
}

#[test]
fn pseudo_label_settings_change_what_is_trained_on() {
    use xp::experiment::spec::{Modality, Rebalance, RunConfig};
    let tmp = tempfile::tempdir().unwrap();
    let store = demo_store(tmp.path());
    let opened = xp::store::Store::open(&store).unwrap();
    let head = opened.head().unwrap();
    let mut config = RunConfig {
        data: Default::default(),
        model: Default::default(),
        train: Default::default(),
    };
    config.model.modalities = vec![Modality::Keypoints];
    config.model.sequence.max_frames = 16;
    let load = |c: &RunConfig| xp::dataset::load(&opened, &head.snapshot, c).unwrap();
    let off = load(&config);
    assert_eq!(off.pseudo_labelled, 0);
    assert!(off.train.iter().all(|e| !e.pseudo));

    config.train.pseudo_labels.use_ = true;
    config.train.pseudo_labels.weight = 0.5;
    let all = load(&config);
    let pseudo = |s: &xp::dataset::Splits| -> Vec<(i32, u8, f32)> {
        s.train
            .iter()
            .filter(|e| e.pseudo)
            .map(|e| (e.video_id, e.label, e.weight))
            .collect()
    };
    let merged = pseudo(&all);
    assert!(merged.len() > 5, "{merged:?}");
    assert_eq!(merged.len(), all.pseudo_labelled);
    assert!(merged.iter().all(|p| p.2 == 0.5));
    // Test videos never take a pseudo-label, and gold videos keep theirs.
    assert!(all.test.iter().chain(&all.val).all(|e| !e.pseudo));
    assert_eq!(all.train.len() - merged.len(), off.train.len());

    // A confidence threshold merges fewer.
    config.train.pseudo_labels.min_confidence = 0.8;
    let confident = pseudo(&load(&config));
    assert!(
        confident.len() < merged.len(),
        "{} vs {}",
        confident.len(),
        merged.len()
    );
    config.train.pseudo_labels.min_confidence = 0.0;

    // The weight is each pseudo-labelled video's loss weight.
    config.train.pseudo_labels.weight = 1.0;
    assert!(pseudo(&load(&config)).iter().all(|p| p.2 == 1.0));
    config.train.pseudo_labels.weight = 0.5;

    // Rebalancing to the gold class ratio.
    let gold = [0u8, 1].map(|c| off.train.iter().filter(|e| e.label == c).count() as f64);
    let count = |p: &[(i32, u8, f32)], c: u8| p.iter().filter(|x| x.1 == c).count() as f64;
    config.train.pseudo_labels.rebalance = Rebalance::Subsample;
    let sub = pseudo(&load(&config));
    assert!(
        sub.len() < merged.len(),
        "{} vs {}",
        sub.len(),
        merged.len()
    );
    let ratio = count(&sub, 1) / count(&sub, 0).max(1.0);
    assert!(
        (ratio - gold[1] / gold[0]).abs() < 0.2,
        "subsampled Win/Lose {ratio}, gold {}",
        gold[1] / gold[0]
    );
    config.train.pseudo_labels.rebalance = Rebalance::ClassWeight;
    let weighted = pseudo(&load(&config));
    assert_eq!(weighted.len(), merged.len());
    let mass = |c: u8| -> f64 {
        weighted
            .iter()
            .filter(|x| x.1 == c)
            .map(|x| f64::from(x.2))
            .sum()
    };
    let total = 0.5 * merged.len() as f64;
    assert!((mass(0) + mass(1) - total).abs() < 1e-3, "mass kept");
    assert!(
        (mass(1) / mass(0) - gold[1] / gold[0]).abs() < 1e-3,
        "class masses in the gold ratio"
    );
}
