//! The three on-disk formats: the iMiGUE label CSV, the challenge's per-video keypoint table and
//! OpenPose's per-frame JSON. Numbers are formatted by hand (integer arithmetic into a reused
//! buffer) because the tables hold tens of millions of them.

use super::plan::{FPS, Plan};
use super::skeleton::{N_BODY, N_FACE, N_HAND, N_POINTS, Person};
use std::io::Write;
use std::path::Path;

pub(crate) const LABELS_HEADER: [&str; 11] = [
    "video_id",
    "label_id",
    "start_time",
    "start_frame",
    "end_time",
    "end_frame",
    "class",
    "subject_id",
    "subject_gender",
    "subject_nationality",
    "win_or_lose",
];

/// Writes `labels.csv`: one row per clip, by video id then label id.
pub(crate) fn write_labels(plan: &Plan, path: &Path) -> anyhow::Result<usize> {
    let mut w = csv::Writer::from_path(path)?;
    w.write_record(LABELS_HEADER)?;
    let mut rows = 0;
    for v in &plan.videos {
        let s = &plan.subjects[v.subject - 1];
        for c in &v.clips {
            w.write_record([
                v.id.to_string(),
                c.label_id.to_string(),
                format!("{:.4}", f64::from(c.start) / FPS),
                c.start.to_string(),
                format!("{:.4}", f64::from(c.end) / FPS),
                c.end.to_string(),
                c.class.to_string(),
                s.id.to_string(),
                if s.female { "F" } else { "M" }.to_string(),
                s.nationality.to_string(),
                if v.win { "Win" } else { "Lose" }.to_string(),
            ])?;
            rows += 1;
        }
    }
    w.flush()?;
    Ok(rows)
}

/// The streams of a person in table/JSON order: (table prefix, JSON key, first point, count).
pub(crate) const STREAMS: [(&str, &str, usize, usize); 4] = [
    ("body", "pose_keypoints_2d", 0, N_BODY),
    ("face", "face_keypoints_2d", N_BODY, N_FACE),
    (
        "hand_left",
        "hand_left_keypoints_2d",
        N_BODY + N_FACE,
        N_HAND,
    ),
    (
        "hand_right",
        "hand_right_keypoints_2d",
        N_BODY + N_FACE + N_HAND,
        N_HAND,
    ),
];

/// The keypoint table header: `frame` and 137 x (x, y, c) columns.
pub(crate) fn table_header() -> String {
    let mut h = String::from("frame");
    for (name, _, _, n) in STREAMS {
        for i in 0..n {
            for axis in ["x", "y", "c"] {
                h.push_str(&format!(",{name}_{i}_{axis}"));
            }
        }
    }
    h.push('\n');
    h
}

/// Appends a non-negative integer.
fn push_uint(buf: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Appends `v` rounded to `decimals` places (at most 9), without trailing zeros; `0` for zero.
fn push_fixed(buf: &mut Vec<u8>, v: f64, decimals: u32) {
    let pow = 10u64.pow(decimals);
    let scaled = (v.abs() * pow as f64).round() as u64;
    if scaled == 0 {
        buf.push(b'0');
        return;
    }
    if v < 0.0 {
        buf.push(b'-');
    }
    push_uint(buf, scaled / pow);
    let mut frac = scaled % pow;
    if frac == 0 {
        return;
    }
    let mut digits = decimals;
    while frac.is_multiple_of(10) {
        frac /= 10;
        digits -= 1;
    }
    buf.push(b'.');
    let width = digits as usize;
    let start = buf.len();
    push_uint(buf, frac);
    // Left-pad the fraction with zeros (e.g. .05).
    let written = buf.len() - start;
    if written < width {
        buf.splice(start..start, std::iter::repeat_n(b'0', width - written));
    }
}

/// Appends `v` with 6 significant digits, like C++ streams' default (OpenPose's JSON writer).
/// Values here are pixel coordinates and confidences, so no exponent is ever needed.
pub(crate) fn push_sig6(buf: &mut Vec<u8>, v: f64) {
    let a = v.abs();
    if a < 1e-4 {
        buf.push(b'0');
        return;
    }
    let mut exp = a.log10().floor() as i32;
    // log10 can be off by one right at powers of ten.
    if 10f64.powi(exp) > a {
        exp -= 1;
    }
    let mut decimals = (5 - exp).max(0) as u32;
    // Rounding can carry into a 7th digit (999999.5 -> 1e6): drop one decimal then.
    if decimals > 0 && (a * 10f64.powi(decimals as i32)).round() >= 1e6 {
        decimals -= 1;
    }
    push_fixed(buf, v, decimals);
}

/// Appends one table row: the frame number then 411 values (all zeros for a lost person).
pub(crate) fn push_table_row(buf: &mut Vec<u8>, frame: u32, person: Option<&Person>) {
    push_uint(buf, u64::from(frame));
    match person {
        None => {
            for _ in 0..N_POINTS * 3 {
                buf.extend_from_slice(b",0");
            }
        }
        Some(p) => {
            for pt in p.iter() {
                buf.push(b',');
                push_fixed(buf, pt[0], 2);
                buf.push(b',');
                push_fixed(buf, pt[1], 2);
                buf.push(b',');
                push_fixed(buf, pt[2], 3);
            }
        }
    }
    buf.push(b'\n');
}

/// Appends one OpenPose JSON frame holding `people` (possibly none).
pub(crate) fn push_json_frame(buf: &mut Vec<u8>, people: &[&Person]) {
    buf.extend_from_slice(b"{\"version\":1.3,\"people\":[");
    for (k, p) in people.iter().enumerate() {
        if k > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(b"{\"person_id\":[-1]");
        for (_, key, first, n) in STREAMS {
            buf.extend_from_slice(b",\"");
            buf.extend_from_slice(key.as_bytes());
            buf.extend_from_slice(b"\":[");
            for (i, pt) in p[first..first + n].iter().enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                push_sig6(buf, pt[0]);
                buf.push(b',');
                push_sig6(buf, pt[1]);
                buf.push(b',');
                push_sig6(buf, pt[2]);
            }
            buf.push(b']');
        }
        buf.extend_from_slice(
            b",\"pose_keypoints_3d\":[],\"face_keypoints_3d\":[],\"hand_left_keypoints_3d\":[],\"hand_right_keypoints_3d\":[]}",
        );
    }
    buf.extend_from_slice(b"]}");
}

/// Writes `bytes` to `path` in one go.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(v: f64, d: u32) -> String {
        let mut b = Vec::new();
        push_fixed(&mut b, v, d);
        String::from_utf8(b).unwrap()
    }

    fn sig6(v: f64) -> String {
        let mut b = Vec::new();
        push_sig6(&mut b, v);
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn fixed_point_numbers_are_short() {
        assert_eq!(fixed(0.0, 2), "0");
        assert_eq!(fixed(0.001, 2), "0");
        assert_eq!(fixed(612.0, 2), "612");
        assert_eq!(fixed(612.5, 2), "612.5");
        assert_eq!(fixed(612.05, 2), "612.05");
        assert_eq!(fixed(0.8139, 3), "0.814");
        assert_eq!(fixed(0.0204, 3), "0.02");
        assert_eq!(fixed(0.005, 3), "0.005");
        assert_eq!(fixed(-1.25, 2), "-1.25");
    }

    #[test]
    fn six_significant_digits_like_openpose() {
        assert_eq!(sig6(263.054), "263.054");
        assert_eq!(sig6(0.813957), "0.813957");
        assert_eq!(sig6(98.45231), "98.4523");
        assert_eq!(sig6(0.02028614), "0.0202861");
        assert_eq!(sig6(1000.0), "1000");
        assert_eq!(sig6(0.0), "0");
        assert_eq!(sig6(999.9999), "1000");
        assert_eq!(sig6(1279.999999), "1280");
    }
}
