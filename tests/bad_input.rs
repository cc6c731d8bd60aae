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
            "1.5".into()
        }
    });
    refused(
        &store,
        &["ingest", "openpose-table", table.to_str().unwrap()],
        &["4.csv:3", "body_1_y", "not a finite number"],
    );
}

/// A keypoint table with a header and two frames; `cell(row, value_column)` gives the text.
fn table_file(dir: &Path, name: &str, cell: impl Fn(usize, usize) -> String) -> PathBuf {
    let mut text = String::from("frame");
    for n in xp::ingest::openpose_table::value_column_names() {
        text.push(',');
        text.push_str(&n);
    }
    text.push('\n');
    for row in 0..2 {
        text.push_str(&row.to_string());
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
fn non_numeric_csv_cell() {
    let tmp = tempfile::tempdir().unwrap();
    let store = populated_store(tmp.path());
    let table = table_file(tmp.path(), "2.csv", |row, col| {
        if row == 0 && col == 79 {
            "12.5x".into()
        } else {
            "3".into()
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
