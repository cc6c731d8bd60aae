//! Image and transcript vectors of one video, read from the store for the image and text
//! branches, and the image vectors spread over the frames the model samples.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, bail};
use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float32Type, Int32Type};

use crate::store::part;

/// One video's image vectors, in frame order.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameVectors {
    pub frames: Vec<i64>,
    /// `[frames.len(), dim]`, flattened.
    pub values: Vec<f32>,
    pub dim: usize,
}

/// What the image branch reads for one video: the distinct vectors its sampled frames show,
/// and which one each frame shows.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFrames {
    /// `[distinct, dim]`, flattened.
    pub vectors: Vec<f32>,
    pub dim: usize,
    /// Per sampled frame: the row of `vectors` it shows, or None before the first vector.
    pub index: Vec<Option<u32>>,
}

/// One video's transcript vectors: one for the whole transcript, or one per segment.
#[derive(Debug, Clone, PartialEq)]
pub struct TextVectors {
    /// `[segments, dim]`, flattened.
    pub vectors: Vec<f32>,
    pub dim: usize,
    pub segments: usize,
}

fn vectors_of(batch: &arrow::array::RecordBatch, i: usize, path: &Path) -> Result<Vec<f32>> {
    let list = batch
        .column_by_name("vector")
        .ok_or_else(|| anyhow::anyhow!("{}: no `vector` column", path.display()))?
        .as_list::<i32>();
    Ok(list
        .value(i)
        .as_primitive::<Float32Type>()
        .values()
        .to_vec())
}

/// Reads one `embeddings` part (one video, one model), sorted by frame.
pub fn read_frame_vectors(path: &Path) -> Result<FrameVectors> {
    let mut rows: Vec<(i64, Vec<f32>)> = Vec::new();
    for batch in part::read_all(path)? {
        let frames = batch
            .column_by_name("frame")
            .unwrap()
            .as_primitive::<Int32Type>();
        for i in 0..batch.num_rows() {
            rows.push((i64::from(frames.value(i)), vectors_of(&batch, i, path)?));
        }
    }
    rows.sort_by_key(|r| r.0);
    let dim = rows.first().map_or(0, |r| r.1.len());
    if rows.iter().any(|r| r.1.len() != dim) {
        bail!("{}: vectors of different sizes in one part", path.display());
    }
    Ok(FrameVectors {
        frames: rows.iter().map(|r| r.0).collect(),
        values: rows.into_iter().flat_map(|r| r.1).collect(),
        dim,
    })
}

/// The image vectors the sampled `positions` (absolute frame numbers, ascending) show: each
/// position shows the vector of the nearest frame at or before it (crops are embedded every
/// few frames; a vector stands for the frames up to the next one). Positions before the
/// first vector show none (masked). None when no position has a vector.
pub fn align(vectors: &FrameVectors, positions: &[i64]) -> Option<ImageFrames> {
    let mut used: BTreeMap<usize, u32> = BTreeMap::new();
    let mut index = Vec::with_capacity(positions.len());
    let mut next = 0; // first vector whose frame is after the current position
    for &p in positions {
        while next < vectors.frames.len() && vectors.frames[next] <= p {
            next += 1;
        }
        index.push(next.checked_sub(1).map(|row| {
            let fresh = used.len() as u32;
            *used.entry(row).or_insert(fresh)
        }));
    }
    if used.is_empty() {
        return None;
    }
    // Rows in first-use order, which is frame order: positions ascend.
    let mut order: Vec<(u32, usize)> = used.into_iter().map(|(row, k)| (k, row)).collect();
    order.sort_unstable();
    let dim = vectors.dim;
    let mut out = Vec::with_capacity(order.len() * dim);
    for (_, row) in order {
        out.extend_from_slice(&vectors.values[row * dim..(row + 1) * dim]);
    }
    Some(ImageFrames {
        vectors: out,
        dim,
        index,
    })
}

/// Reads one `text_embeddings` part (one video, one model). `segments`: which segments to
/// keep (None = the whole transcript's vector when stored, else every segment's).
pub fn read_text_vectors(
    path: &Path,
    segments: Option<&dyn Fn(i32) -> bool>,
) -> Result<Option<TextVectors>> {
    let mut whole = None;
    let mut parts: Vec<(i32, Vec<f32>)> = Vec::new();
    for batch in part::read_all(path)? {
        let segment = batch
            .column_by_name("segment")
            .unwrap()
            .as_primitive::<Int32Type>();
        for i in 0..batch.num_rows() {
            let v = vectors_of(&batch, i, path)?;
            if segment.is_null(i) {
                whole = Some(v);
            } else {
                parts.push((segment.value(i), v));
            }
        }
    }
    parts.sort_by_key(|p| p.0);
    let chosen: Vec<Vec<f32>> = match (segments, whole) {
        (None, Some(w)) => vec![w],
        (None, None) => parts.into_iter().map(|p| p.1).collect(),
        (Some(keep), _) => parts
            .into_iter()
            .filter(|p| keep(p.0))
            .map(|p| p.1)
            .collect(),
    };
    let Some(dim) = chosen.first().map(Vec::len) else {
        return Ok(None);
    };
    Ok(Some(TextVectors {
        segments: chosen.len(),
        dim,
        vectors: chosen.into_iter().flatten().collect(),
    }))
}

/// The segments of one `transcripts` part spoken by `speaker` (case-insensitive).
pub fn segments_of_speaker(path: &Path, speaker: &str) -> Result<Vec<i32>> {
    let mut out = Vec::new();
    for batch in part::read_all(path)? {
        let segment = batch
            .column_by_name("segment")
            .unwrap()
            .as_primitive::<Int32Type>();
        let speakers = batch.column_by_name("speaker").unwrap().as_string::<i32>();
        for i in 0..batch.num_rows() {
            if !speakers.is_null(i) && speakers.value(i).eq_ignore_ascii_case(speaker) {
                out.push(segment.value(i));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vectors(frames: &[i64]) -> FrameVectors {
        FrameVectors {
            frames: frames.to_vec(),
            // Vector k is [k, 10 + k].
            values: (0..frames.len())
                .flat_map(|k| [k as f32, 10.0 + k as f32])
                .collect(),
            dim: 2,
        }
    }

    #[test]
    fn a_frame_shows_the_nearest_earlier_vector() {
        // Vectors at frames 16, 32, 48; positions sampled every 10 frames from 5.
        let v = vectors(&[16, 32, 48]);
        let got = align(&v, &[5, 15, 16, 25, 35, 45, 55]).unwrap();
        // 5 and 15 come before the first vector; 16 and 25 show frame 16's; 35 and 45 show
        // frame 32's; 55 shows frame 48's.
        assert_eq!(
            got.index,
            vec![None, None, Some(0), Some(0), Some(1), Some(1), Some(2)]
        );
        assert_eq!(got.vectors, vec![0.0, 10.0, 1.0, 11.0, 2.0, 12.0]);
    }

    #[test]
    fn only_the_vectors_shown_are_kept() {
        // Positions 40 and 100 skip the vectors at 16 and 48.
        let v = vectors(&[0, 16, 32, 48, 64]);
        let got = align(&v, &[40, 100]).unwrap();
        assert_eq!(got.index, vec![Some(0), Some(1)]);
        assert_eq!(got.vectors, vec![2.0, 12.0, 4.0, 14.0]);
        assert!(
            align(&v, &[-3]).is_none(),
            "nothing before the first vector"
        );
    }
}
