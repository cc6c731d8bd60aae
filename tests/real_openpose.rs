//! The real sample: 3,000 OpenPose frames of iMiGUE video 298 and real label rows.

mod common;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float32Type, Int32Type};
use common::*;

fn snapshot_id(store: &std::path::Path) -> String {
    let out = xp_ok(store, &["tables"]);
    out.lines()
        .next()
        .unwrap()
        .trim_start_matches("snapshot ")
        .to_string()
}

#[test]
fn real_298_ingests_exactly_and_idempotently() {
    let Some(shared) = require_shared("real_298_ingests_exactly_and_idempotently") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let frames_dir = extract_298(&shared, &tmp.path().join("src"));
    let labels = shared.join("data/imigue/labels_excerpt.csv");

    xp_ok(
        &store,
        &["ingest", "imigue-labels", labels.to_str().unwrap()],
    );
    let summary = xp_ok(
        &store,
        &["ingest", "openpose", frames_dir.to_str().unwrap()],
    );
    assert!(summary.contains("frames 3000"), "{summary}");
    let first = snapshot_id(&store);

    // 3,000 frames, as the label excerpt's video 298 is one player, always detected.
    let count = xp_ok(
        &store,
        &[
            "sql",
            "SELECT COUNT(DISTINCT frame) AS f, COUNT(*) AS r FROM keypoints WHERE video_id = 298",
            "--format",
            "csv",
        ],
    );
    assert_eq!(count, "f,r\n3000,3000\n");

    // Every value read back through SQL equals the JSON's value.
    let out = tmp.path().join("298.parquet");
    xp_ok(
        &store,
        &[
            "sql",
            "SELECT frame, person, body, face, hand_left, hand_right FROM keypoints \
             WHERE video_id = 298 ORDER BY frame, person",
            "--format",
            "parquet",
            "--output",
            out.to_str().unwrap(),
        ],
    );
    let batches = xp::store::part::read_all(&out).unwrap();
    let mut frame_no = 0usize;
    let mut compared = 0usize;
    for batch in &batches {
        let frames = batch.column(0).as_primitive::<Int32Type>();
        for row in 0..batch.num_rows() {
            let frame = frames.value(row) as usize;
            assert_eq!(frame, frame_no);
            let path = frames_dir.join(format!("298_{frame:012}_keypoints.json"));
            let json: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let person = &json["people"][0];
            for (col, key) in [
                (2, "pose_keypoints_2d"),
                (3, "face_keypoints_2d"),
                (4, "hand_left_keypoints_2d"),
                (5, "hand_right_keypoints_2d"),
            ] {
                let expected: Vec<f32> = person[key]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
                    .collect();
                let list = batch.column(col).as_fixed_size_list();
                assert!(list.is_valid(row), "{key} of frame {frame} is null");
                let stored = list.value(row);
                let stored: Vec<f32> = stored.as_primitive::<Float32Type>().values().to_vec();
                assert_eq!(stored.len(), expected.len());
                for (a, b) in stored.iter().zip(&expected) {
                    assert_eq!(a.to_bits(), b.to_bits(), "frame {frame} {key}");
                }
                compared += stored.len();
            }
            frame_no += 1;
        }
    }
    assert_eq!(frame_no, 3000);
    assert_eq!(compared, 3000 * 411);

    // A second identical ingest commits nothing and keeps the snapshot id.
    let again = xp_ok(
        &store,
        &["ingest", "openpose", frames_dir.to_str().unwrap()],
    );
    assert!(again.contains("unchanged"), "{again}");
    assert_eq!(snapshot_id(&store), first);
    let again = xp_ok(
        &store,
        &["ingest", "imigue-labels", labels.to_str().unwrap()],
    );
    assert!(again.contains("unchanged"), "{again}");
    assert_eq!(snapshot_id(&store), first);
    assert_eq!(xp_out(&store, &["verify"]).status.code(), Some(0));
}

#[test]
fn real_labels_give_three_videos_with_their_splits() {
    let Some(shared) = require_shared("real_labels_give_three_videos_with_their_splits") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let labels = shared.join("data/imigue/labels_excerpt.csv");
    xp_ok(
        &store,
        &["ingest", "imigue-labels", labels.to_str().unwrap()],
    );
    let out = xp_ok(
        &store,
        &[
            "sql",
            "SELECT v.video_id, v.subject_id, v.label, v.clips, s.split FROM videos v \
             JOIN splits s ON s.video_id = v.video_id AND s.protocol = 'imigue-emotion' \
             ORDER BY v.video_id",
            "--format",
            "csv",
        ],
    );
    assert_eq!(
        out,
        "video_id,subject_id,label,clips,split\n7,23,win,58,train\n46,43,lose,86,train\n298,22,win,56,pool\n"
    );
}
