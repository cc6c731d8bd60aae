//! The `keypoints` table's rows, shared by every keypoint source format.

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::Result;
use arrow::array::{
    ArrayRef, FixedSizeListArray, Float32Array, Int16Array, Int32Array, RecordBatch, StringArray,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::DataType;

/// The four OpenPose streams, in the schema's order, with their flat lengths (points x 3).
pub const STREAMS: [(&str, usize); 4] = [
    ("body", 75),
    ("face", 210),
    ("hand_left", 63),
    ("hand_right", 63),
];

/// The same streams under the names OpenPose's JSON gives them.
pub const JSON_STREAMS: [&str; 4] = [
    "pose_keypoints_2d",
    "face_keypoints_2d",
    "hand_left_keypoints_2d",
    "hand_right_keypoints_2d",
];

/// Total values in one frame's four streams (137 points x 3).
pub const VALUES_PER_PERSON: usize = 411;

/// One person in one frame, or (person = None) a frame where nobody was detected.
#[derive(Debug, Clone, PartialEq)]
pub struct KeypointRow {
    pub frame: i32,
    pub person: Option<i16>,
    pub person_id: Option<i32>,
    /// body, face, hand_left, hand_right; None = the stream was not computed.
    pub streams: [Option<Vec<f32>>; 4],
    /// Index into the video's list of source hashes.
    pub source: usize,
}

/// Counts for the ingest summary.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FrameStats {
    pub frames: u64,
    pub rows: u64,
    pub empty_frames: u64,
    pub multi_person_frames: u64,
    /// Frame numbers between 0 and the last frame that have no data at all.
    pub missing_frames: u64,
    pub empty_streams: u64,
}

impl FrameStats {
    pub fn add(&mut self, other: &FrameStats) {
        self.frames += other.frames;
        self.rows += other.rows;
        self.empty_frames += other.empty_frames;
        self.multi_person_frames += other.multi_person_frames;
        self.missing_frames += other.missing_frames;
        self.empty_streams += other.empty_streams;
    }
}

/// All rows of one video, ready to become one part.
#[derive(Debug)]
pub struct VideoKeypoints {
    pub video_id: i32,
    pub rows: Vec<KeypointRow>,
    pub sources: Vec<String>,
}

impl VideoKeypoints {
    /// Sorts rows by (frame, person), the part's on-disk order.
    pub fn sort(&mut self) {
        self.rows.sort_by_key(|r| (r.frame, r.person));
    }

    pub fn stats(&self) -> FrameStats {
        let mut stats = FrameStats {
            rows: self.rows.len() as u64,
            ..FrameStats::default()
        };
        let mut frames = BTreeSet::new();
        let mut people_in_frame = std::collections::BTreeMap::<i32, u32>::new();
        for row in &self.rows {
            frames.insert(row.frame);
            match row.person {
                None => stats.empty_frames += 1,
                Some(_) => *people_in_frame.entry(row.frame).or_default() += 1,
            }
            stats.empty_streams += row
                .streams
                .iter()
                .filter(|s| s.is_none() && row.person.is_some())
                .count() as u64;
        }
        stats.frames = frames.len() as u64;
        stats.multi_person_frames = people_in_frame.values().filter(|&&n| n > 1).count() as u64;
        if let Some(&last) = frames.last() {
            stats.missing_frames = (last as u64 + 1).saturating_sub(stats.frames);
        }
        stats
    }

    /// Builds the Arrow batch in the `keypoints` schema. Rows must be sorted.
    pub fn to_batch(&self) -> Result<RecordBatch> {
        let schema = crate::schema::table("keypoints").schema.clone();
        let n = self.rows.len();
        let video = Int32Array::from(vec![self.video_id; n]);
        let frame = Int32Array::from_iter_values(self.rows.iter().map(|r| r.frame));
        let person = Int16Array::from_iter(self.rows.iter().map(|r| r.person));
        let person_id = Int32Array::from_iter(self.rows.iter().map(|r| r.person_id));
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(video),
            Arc::new(frame),
            Arc::new(person),
            Arc::new(person_id),
        ];
        for (i, (name, size)) in STREAMS.iter().enumerate() {
            let DataType::FixedSizeList(item, _) = schema.field_with_name(name)?.data_type() else {
                unreachable!("schema test guards the stream types")
            };
            let mut values = Vec::with_capacity(n * size);
            let mut valid = Vec::with_capacity(n);
            for row in &self.rows {
                match &row.streams[i] {
                    Some(v) => {
                        values.extend_from_slice(v);
                        valid.push(true);
                    }
                    None => {
                        // A null slot still occupies `size` values in the child array.
                        values.resize(values.len() + size, 0.0);
                        valid.push(false);
                    }
                }
            }
            let nulls = valid.iter().any(|v| !v).then(|| NullBuffer::from(valid));
            columns.push(Arc::new(FixedSizeListArray::try_new(
                item.clone(),
                *size as i32,
                Arc::new(Float32Array::from(values)),
                nulls,
            )?));
        }
        columns.push(Arc::new(StringArray::from_iter_values(
            self.rows.iter().map(|r| self.sources[r.source].as_str()),
        )));
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

/// The part key of one video's keypoints.
pub fn part_key(video_id: i32) -> String {
    format!("video={video_id}")
}

/// The largest confidence xp accepts. OpenPose's scores are heatmap peaks: body scores stay
/// in [0, 1], but face and hand scores go a little above 1 (up to 1.09 in the real frames of
/// iMiGUE video 298). A negative score, or one far above 1 (7.0, 255), is another tool's scale
/// or a corrupt file, and would silently distort the normalisation.
pub const MAX_CONFIDENCE: f32 = 1.5;

/// Checks a parsed stream: its length, that every value is finite and that every confidence
/// is in [0, `MAX_CONFIDENCE`]. Returns a message for the user on failure.
pub fn check_stream(values: &[f32], expected: usize) -> Result<(), String> {
    if values.len() != expected {
        return Err(format!(
            "has {} values, expected {expected} ({} points x (x, y, confidence))",
            values.len(),
            expected / 3
        ));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(format!(
            "value {i} (point {}, {}) is {}, not a finite number",
            i / 3,
            ["x", "y", "confidence"][i % 3],
            values[i]
        ));
    }
    if let Some(p) =
        (0..values.len() / 3).find(|p| !(0.0..=MAX_CONFIDENCE).contains(&values[p * 3 + 2]))
    {
        return Err(format!(
            "point {p} has confidence {}: OpenPose confidences are in [0, 1] (face and hand \
             scores a little above; xp accepts up to {MAX_CONFIDENCE})",
            values[p * 3 + 2]
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(frame: i32, person: Option<i16>) -> KeypointRow {
        KeypointRow {
            frame,
            person,
            person_id: person.map(|_| -1),
            streams: if person.is_some() {
                [
                    Some(vec![1.0; 75]),
                    Some(vec![2.0; 210]),
                    None,
                    Some(vec![3.0; 63]),
                ]
            } else {
                [None, None, None, None]
            },
            source: 0,
        }
    }

    #[test]
    fn stats_count_gaps_empties_and_crowds() {
        let mut v = VideoKeypoints {
            video_id: 1,
            rows: vec![
                row(3, Some(1)),
                row(0, Some(0)),
                row(1, None),
                row(3, Some(0)),
            ],
            sources: vec!["h".into()],
        };
        v.sort();
        let s = v.stats();
        assert_eq!(s.frames, 3);
        assert_eq!(s.rows, 4);
        assert_eq!(s.empty_frames, 1);
        assert_eq!(s.multi_person_frames, 1);
        assert_eq!(s.missing_frames, 1); // frame 2
        assert_eq!(s.empty_streams, 3); // hand_left in each of the three person rows
        let batch = v.to_batch().unwrap();
        assert_eq!(batch.num_rows(), 4);
        assert_eq!(batch.column_by_name("hand_left").unwrap().null_count(), 4);
    }

    #[test]
    fn stream_check_names_the_problem() {
        assert!(check_stream(&[0.0; 75], 75).is_ok());
        let mut v = [0.5f32; 75];
        v[3 * 7 + 2] = 7.0;
        assert!(
            check_stream(&v, 75)
                .unwrap_err()
                .contains("point 7 has confidence 7")
        );
        v[3 * 7 + 2] = -0.1;
        assert!(check_stream(&v, 75).unwrap_err().contains("point 7"));
        v[3 * 7 + 2] = 1.08827; // the largest face score in the real video 298
        assert!(check_stream(&v, 75).is_ok());
        v[3 * 7 + 2] = 1.6;
        assert!(check_stream(&v, 75).is_err());
        let e = check_stream(&[0.0; 74], 75).unwrap_err();
        assert!(e.contains("74 values, expected 75"), "{e}");
        let mut v = vec![0.0; 63];
        v[4] = f32::NAN;
        let e = check_stream(&v, 63).unwrap_err();
        assert!(e.contains("point 1, y"), "{e}");
    }
}
