//! Bad input never costs data: each case gives a clear error naming the file (and line or
//! field), exits with code 3, and leaves the store byte-for-byte as it was.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// A store holding labels for videos 1..=4 and the keypoints of video 1.
fn populated_store(tmp: &Path) -> PathBuf {
    let store = tmp.join("store");
    let labels = write_labels(tmp, &[1, 2, 3, 4]);
    xp_ok(
        &store,
        &["ingest", "imigue-labels", labels.to_str().unwrap()],
    );
    let video = write_openpose_video(tmp, 1, 5);
    xp_ok(&store, &["ingest", "openpose", video.to_str().unwrap()]);
    store
}

/// Runs a bad ingest and checks the error and the untouched store.
fn refused(store: &Path, args: &[&str], must_mention: &[&str]) {
    let before = fingerprint(store);
    let out = xp_out(store, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "xp {args:?}: {stderr}");
    for text in must_mention {
        assert!(
            stderr.contains(text),
            "error for {args:?} lacks `{text}`:\n{stderr}"
        );
    }
    assert!(stderr.contains("store is unchanged"), "{stderr}");
    assert_eq!(fingerprint(store), before, "xp {args:?} changed the store");
}

fn frame_dir(tmp: &Path, name: &str, video: i32, frames: &[String]) -> PathBuf {
    let dir = tmp.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (i, text) in frames.iter().enumerate() {
        std::fs::write(dir.join(format!("{video}_{i:012}_keypoints.json")), text).unwrap();
    }
    dir
}

#[test]
fn truncated_json() {
    let tmp = tempfile::tempdir().unwrap();
    let store = populated_store(tmp.path());
    let good = openpose_frame(1.0);
    let cut = good[..good.len() / 2].to_string();
    let dir = frame_dir(tmp.path(), "trunc", 2, &[good, cut]);
    refused(
        &store,
        &["ingest", "openpose", dir.to_str().unwrap()],
        &["2_000000000001_keypoints.json", "truncated"],
    );
}

#[test]
fn stream_with_74_values() {
    let tmp = tempfile::tempdir().unwrap();
    let store = populated_store(tmp.path());
    let bad =
        openpose_frame(1.0).replacen("\"pose_keypoints_2d\":[1,", "\"pose_keypoints_2d\":[", 1);
    let dir = frame_dir(tmp.path(), "short", 2, &[openpose_frame(0.0), bad]);
    refused(
        &store,
        &["ingest", "openpose", dir.to_str().unwrap()],
        &[
            "2_000000000001_keypoints.json",
            "pose_keypoints_2d",
            "74 values, expected 75",
        ],
    );
}

#[test]
fn nan_and_infinity() {
    let tmp = tempfile::tempdir().unwrap();
    let store = populated_store(tmp.path());
    let nan = openpose_frame(1.0).replacen("[1,", "[NaN,", 1);
    let dir = frame_dir(tmp.path(), "nan", 2, &[nan]);
    refused(
        &store,
        &["ingest", "openpose", dir.to_str().unwrap()],
        &["2_000000000000_keypoints.json", "NaN or Infinity"],
    );
    // A number too large for f32 becomes infinite: refused too.
    let huge = openpose_frame(1.0).replacen("[1,", "[1e39,", 1);
    let dir = frame_dir(tmp.path(), "huge", 3, &[huge]);
    refused(
        &store,
        &["ingest", "openpose", dir.to_str().unwrap()],
        &["3_000000000000_keypoints.json", "not a finite number"],
    );
    // And in a keypoint table.
    let table = table_file(tmp.path(), "4.csv", |row, col| {
        if row == 1 && col == 4 {
            "inf".into()
        } else {
            plain(col)
        }
    });
    refused(
        &store,
        &["ingest", "openpose-table", table.to_str().unwrap()],
        &["4.csv:3", "body_1_y", "not a finite number"],
    );
}

/// A valid cell of value column `col`: a coordinate, or a confidence in [0, 1].
fn plain(col: usize) -> String {
    if col % 3 == 2 { "0.5" } else { "3" }.into()
}

/// A keypoint table with a header and two frames; `cell(row, value_column)` gives the text.
fn table_file(dir: &Path, name: &str, cell: impl Fn(usize, usize) -> String) -> PathBuf {
    table_with_frames(dir, name, &[0, 1], cell)
}

/// A keypoint table with a header and one row per frame number in `frames`.
fn table_with_frames(
    dir: &Path,
    name: &str,
    frames: &[i64],
    cell: impl Fn(usize, usize) -> String,
) -> PathBuf {
    let mut text = String::from("frame");
    for n in xp::ingest::openpose_table::value_column_names() {
        text.push(',');
        text.push_str(&n);
    }
    text.push('\n');
    for (row, frame) in frames.iter().enumerate() {
        text.push_str(&frame.to_string());
        for col in 0..411 {
            text.push(',');
            text.push_str(&cell(row, col));
        }
        text.push('\n');
    }
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn confidences_outside_zero_to_one() {
    let tmp = tempfile::tempdir().unwrap();
    let store = populated_store(tmp.path());
    // Point 1 of the body (values 3..6) gets confidence 7.
    let good = openpose_frame(0.0);
    let prefix = "\"pose_keypoints_2d\":[0,0.5,0.2,1.5,2,0.5,";
    assert!(good.contains(prefix), "{good}");
    let seven = good.replacen(prefix, "\"pose_keypoints_2d\":[0,0.5,0.2,1.5,2,7,", 1);
    let dir = frame_dir(tmp.path(), "conf", 2, &[seven]);
    refused(
        &store,
        &["ingest", "openpose", dir.to_str().unwrap()],
        &[
            "2_000000000000_keypoints.json",
            "people[0].pose_keypoints_2d",
            "confidence 7",
        ],
    );
    let table = table_file(tmp.path(), "3.csv", |row, col| {
        if row == 1 && col == 8 {
            "-0.25".into()
        } else {
            plain(col)
        }
    });
    refused(
        &store,
        &["ingest", "openpose-table", table.to_str().unwrap()],
        &["3.csv:3", "body_2_c", "confidence -0.25 is outside"],
    );
}

#[test]
fn implausible_frame_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let store = populated_store(tmp.path());
    // A frame number near i32::MAX would make training allocate a frame array that long.
    let dir = tmp.path().join("far");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("2_002147483000_keypoints.json"),
        openpose_frame(0.0),
    )
    .unwrap();
    refused(
        &store,
        &["ingest", "openpose", dir.to_str().unwrap()],
        &["2_002147483000_keypoints.json", "implausible", "10 hours"],
    );
    let table = table_with_frames(tmp.path(), "3.csv", &[0, 99_000_000], |_, col| plain(col));
    refused(
        &store,
        &["ingest", "openpose-table", table.to_str().unwrap()],
        &["3.csv:3", "frame", "implausible"],
    );
}

#[test]
fn non_numeric_csv_cell() {
    let tmp = tempfile::tempdir().unwrap();
    let store = populated_store(tmp.path());
    let table = table_file(tmp.path(), "2.csv", |row, col| {
        if row == 0 && col == 79 {
            "12.5x".into()
        } else {
            plain(col)
        }
    });
    refused(
        &store,
        &["ingest", "openpose-table", table.to_str().unwrap()],
        &["2.csv:2", "face_1_y", "`12.5x` is not a number"],
    );
}

#[test]
fn label_csv_with_missing_column() {
    let tmp = tempfile::tempdir().unwrap();
    let store = populated_store(tmp.path());
    let p = tmp.path().join("labels_bad.csv");
    std::fs::write(
        &p,
        "video_id,label_id,start_time,start_frame,end_time,end_frame,class,subject_id,subject_gender,win_or_lose\n\
         5,1,0.4,10,1.2,30,4,5,M,Win\n",
    )
    .unwrap();
    refused(
        &store,
        &["ingest", "imigue-labels", p.to_str().unwrap()],
        &["labels_bad.csv:1", "subject_nationality", "missing column"],
    );
}

#[test]
fn bad_label_values_name_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let store = populated_store(tmp.path());
    let p = tmp.path().join("labels_bad.csv");
    std::fs::write(
        &p,
        format!(
            "{LABEL_HEADER}5,1,0.4,10,1.2,30,4,5,M,Spain,Win\n5,2,0.4,10,1.2,30,40,5,M,Spain,Win\n"
        ),
    )
    .unwrap();
    refused(
        &store,
        &["ingest", "imigue-labels", p.to_str().unwrap()],
        &[
            "labels_bad.csv:3",
            "field `class`",
            "40 is not a micro-gesture class",
        ],
    );
}

#[test]
fn unknown_video_id() {
    let tmp = tempfile::tempdir().unwrap();
    let store = populated_store(tmp.path());
    let video = write_openpose_video(tmp.path(), 77, 3);
    refused(
        &store,
        &["ingest", "openpose", video.to_str().unwrap()],
        &[
            "77_000000000000_keypoints.json",
            "unknown video id 77",
            "--allow-unknown-videos",
        ],
    );
    let table = table_file(tmp.path(), "78.csv", |_, _| "1".into());
    refused(
        &store,
        &["ingest", "openpose-table", table.to_str().unwrap()],
        &["78.csv", "unknown video id 78"],
    );
}

#[test]
fn empty_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let store = populated_store(tmp.path());
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    refused(
        &store,
        &["ingest", "openpose", empty.to_str().unwrap()],
        &["empty", "no OpenPose frame files"],
    );
}

#[test]
fn unreadable_file() {
    let tmp = tempfile::tempdir().unwrap();
    let store = populated_store(tmp.path());
    let dir = frame_dir(tmp.path(), "unreadable", 2, &[openpose_frame(0.0)]);
    // A frame file that cannot be opened. Permission bits do not stop root (CI runs as root),
    // so the file is a link to nowhere; for other users, also a file without read permission.
    let ghost = dir.join("2_000000000001_keypoints.json");
    std::os::unix::fs::symlink(tmp.path().join("gone"), &ghost).unwrap();
    refused(
        &store,
        &["ingest", "openpose", dir.to_str().unwrap()],
        &["2_000000000001_keypoints.json", "cannot read"],
    );
    std::fs::remove_file(&ghost).unwrap();
    let locked = dir.join("2_000000000002_keypoints.json");
    std::fs::write(&locked, openpose_frame(2.0)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read(&locked).is_err() {
        refused(
            &store,
            &["ingest", "openpose", dir.to_str().unwrap()],
            &["2_000000000002_keypoints.json", "cannot read"],
        );
    }
    // A label file that does not exist.
    refused(
        &store,
        &[
            "ingest",
            "imigue-labels",
            tmp.path().join("nope.csv").to_str().unwrap(),
        ],
        &["nope.csv", "cannot read"],
    );
}

#[test]
fn good_files_before_a_bad_one_are_not_committed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = populated_store(tmp.path());
    // Video 2 is fine, video 3 has a bad frame: neither may land.
    let ok = write_openpose_video(tmp.path(), 2, 4);
    let bad = frame_dir(
        tmp.path(),
        "bad3",
        3,
        &[openpose_frame(0.0), "{\"people\":[{".into()],
    );
    refused(
        &store,
        &[
            "ingest",
            "openpose",
            ok.to_str().unwrap(),
            bad.to_str().unwrap(),
        ],
        &["3_000000000001_keypoints.json"],
    );
}

#[test]
fn bad_command_line_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = xp_out(&tmp.path().join("s"), &["ingest", "openpose"]);
    assert_eq!(out.status.code(), Some(2));
    let out = xp_out(&tmp.path().join("s"), &["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

// ---- Crops, embeddings, transcripts, pseudo-labels ----

/// A `.npy` header as numpy writes it, for dtypes xp's writer does not produce.
fn npy_with_descr(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

#[test]
fn embedding_of_the_wrong_dimension() {
    let tmp = tempfile::tempdir().unwrap();
    let store = populated_store(tmp.path());
    let f = tmp.path().join("1.npy");
    xp::ingest::npy::write_f32(&f, &[2, 512], &vec![0.5; 1024]).unwrap();
    refused(
        &store,
        &[
            "ingest",
            "embeddings",
            "--model",
            "dinov2-base",
            f.to_str().unwrap(),
        ],
        &["1.npy", "512 values", "dinov2-base has 768"],
    );
}

#[test]
fn npy_of_the_wrong_dtype() {
    let tmp = tempfile::tempdir().unwrap();
    let store = populated_store(tmp.path());
    let f = tmp.path().join("1.npy");
    std::fs::write(&f, npy_with_descr("<f8", "(2, 4)", &[0u8; 64])).unwrap();
    refused(
        &store,
        &[
            "ingest",
            "embeddings",
            "--model",
            "x",
            "--dim",
            "4",
            f.to_str().unwrap(),
        ],
        &["1.npy", "float64", "float32"],
    );
}

#[test]
fn embedding_with_nan() {
    let tmp = tempfile::tempdir().unwrap();
    let store = populated_store(tmp.path());
    let f = tmp.path().join("2.npy");
    let mut v = vec![0.25f32; 3 * 4];
    v[2 * 4 + 1] = f32::NAN;
    xp::ingest::npy::write_f32(&f, &[3, 4], &v).unwrap();
    refused(
        &store,
        &[
            "ingest",
            "embeddings",
            "--model",
            "x",
            "--dim",
            "4",
            f.to_str().unwrap(),
        ],
        &["2.npy", "row 2", "NaN", "finite"],
    );
}

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
    xp::ingest::images::encode_jpeg(&img, 90)
}

#[test]
fn box_outside_the_image() {
    let tmp = tempfile::tempdir().unwrap();
    let store = populated_store(tmp.path());
    let dir = tmp.path().join("frames/2");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("000000.jpg"), jpeg(64, 48)).unwrap();
    std::fs::write(dir.join("000001.jpg"), jpeg(64, 48)).unwrap();
    std::fs::write(dir.join("000000.txt"), "0 0.5 0.5 0.2 0.2 0.9\n").unwrap();
    // The second line's box reaches x = 1.2 of the width.
    std::fs::write(
        dir.join("000001.txt"),
        "0 0.5 0.5 0.2 0.2 0.9\n0 0.9 0.5 0.6 0.2 0.5\n",
    )
    .unwrap();
    refused(
        &store,
        &[
            "ingest",
            "crops",
            tmp.path().join("frames").to_str().unwrap(),
        ],
        &["000001.txt:2", "outside the image", "64x48"],
    );
}

#[test]
fn corrupt_jpeg() {
    let tmp = tempfile::tempdir().unwrap();
    let store = populated_store(tmp.path());
    let dir = tmp.path().join("crops/3");
    std::fs::create_dir_all(&dir).unwrap();
    let good = jpeg(40, 40);
    std::fs::write(dir.join("000000.jpg"), &good).unwrap();
    std::fs::write(dir.join("000001.jpg"), &good[..good.len() * 2 / 3]).unwrap();
    refused(
        &store,
        &[
            "ingest",
            "crops",
            "--from",
            "crops",
            tmp.path().join("crops").to_str().unwrap(),
        ],
        &["000001.jpg", "corrupt"],
    );
}

#[test]
fn transcript_with_invalid_utf8() {
    let tmp = tempfile::tempdir().unwrap();
    let store = populated_store(tmp.path());
    let f = tmp.path().join("4.srt");
    let mut bytes =
        b"1\n00:00:01,000 --> 00:00:02,000\nfine\n\n2\n00:00:03,000 --> 00:00:04,000\ncaf".to_vec();
    bytes.extend_from_slice(&[0xE9, b'\n']); // Latin-1 e-acute
    std::fs::write(&f, bytes).unwrap();
    refused(
        &store,
        &["ingest", "transcripts", f.to_str().unwrap()],
        &["4.srt:7", "UTF-8"],
    );
}

#[test]
fn pseudo_label_with_an_unknown_label() {
    let tmp = tempfile::tempdir().unwrap();
    let store = populated_store(tmp.path());
    let f = tmp.path().join("vlm.jsonl");
    std::fs::write(
        &f,
        "{\"video_id\": 1, \"label\": \"win\"}\n{\"video_id\": 2, \"label\": \"draw\"}\n",
    )
    .unwrap();
    refused(
        &store,
        &[
            "ingest",
            "pseudo-labels",
            f.to_str().unwrap(),
            "--labeler",
            "vlm",
        ],
        &["vlm.jsonl:2", "field `label`", "draw", "win or lose"],
    );
}

#[test]
fn pseudo_label_that_changes_a_stored_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let store = populated_store(tmp.path());
    let f = tmp.path().join("vlm.jsonl");
    std::fs::write(
        &f,
        "{\"video_id\": 1, \"label\": \"win\", \"prompt\": \"P\"}\n",
    )
    .unwrap();
    xp_ok(
        &store,
        &[
            "ingest",
            "pseudo-labels",
            f.to_str().unwrap(),
            "--labeler",
            "vlm",
        ],
    );
    let g = tmp.path().join("vlm2.jsonl");
    std::fs::write(
        &g,
        "{\"video_id\": 2, \"label\": \"win\", \"prompt\": \"P\"}\n{\"video_id\": 1, \"label\": \"lose\", \"prompt\": \"P\"}\n",
    )
    .unwrap();
    refused(
        &store,
        &[
            "ingest",
            "pseudo-labels",
            g.to_str().unwrap(),
            "--labeler",
            "vlm",
        ],
        &["vlm2.jsonl:2", "video 1", "different answer", "--labeler"],
    );
    // Within one file too.
    std::fs::write(
        &g,
        "{\"video_id\": 3, \"label\": \"win\"}\n{\"video_id\": 3, \"label\": \"lose\"}\n",
    )
    .unwrap();
    refused(
        &store,
        &[
            "ingest",
            "pseudo-labels",
            g.to_str().unwrap(),
            "--labeler",
            "vlm",
        ],
        &["vlm2.jsonl:2", "different answer", "line 1"],
    );
}

#[test]
fn unknown_pseudo_label_key_and_unknown_model() {
    let tmp = tempfile::tempdir().unwrap();
    let store = populated_store(tmp.path());
    let f = tmp.path().join("vlm.jsonl");
    std::fs::write(
        &f,
        "{\"video_id\": 1, \"label\": \"win\", \"confidense\": 0.5}\n",
    )
    .unwrap();
    refused(
        &store,
        &[
            "ingest",
            "pseudo-labels",
            f.to_str().unwrap(),
            "--labeler",
            "vlm",
        ],
        &["vlm.jsonl:1", "confidense", "unknown key"],
    );
    // A model xp cannot size is a usage error (exit 1), also before anything is written.
    let before = fingerprint(&store);
    let npy = tmp.path().join("1.npy");
    xp::ingest::npy::write_f32(&npy, &[1, 4], &[0.0; 4]).unwrap();
    let out = xp_out(
        &store,
        &[
            "ingest",
            "embeddings",
            "--model",
            "mystery",
            npy.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dim"));
    assert_eq!(fingerprint(&store), before);
}

#[test]
fn empty_embedding_array_and_bad_prompt_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let store = populated_store(tmp.path());
    let f = tmp.path().join("1.npy");
    xp::ingest::npy::write_f32(&f, &[0, 4], &[]).unwrap();
    refused(
        &store,
        &[
            "ingest",
            "embeddings",
            "--model",
            "x",
            "--dim",
            "4",
            f.to_str().unwrap(),
        ],
        &["1.npy", "no vectors"],
    );
    let j = tmp.path().join("vlm.jsonl");
    std::fs::write(
        &j,
        "{\"video_id\": 1, \"label\": \"win\", \"prompt_hash\": \"v1\"}\n",
    )
    .unwrap();
    refused(
        &store,
        &[
            "ingest",
            "pseudo-labels",
            j.to_str().unwrap(),
            "--labeler",
            "vlm",
        ],
        &["vlm.jsonl:1", "prompt_hash", "64 hex"],
    );
}

#[test]
fn a_failed_ingest_into_a_new_store_leaves_no_store() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("fresh");
    let f = tmp.path().join("3.srt");
    std::fs::write(&f, b"1\n00:00:01,000 --> 00:00:02,000\nd\xe9j\xe0 vu\n").unwrap();
    let out = xp_out(
        &store,
        &[
            "ingest",
            "transcripts",
            "--allow-unknown-videos",
            f.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(
        !store.exists(),
        "the failed ingest left {}",
        store.display()
    );
}
