//! One video's keypoints -> model input: a person per frame, frame sampling, normalisation by
//! the body, stream selection and inter-frame offsets.

use crate::experiment::spec::{Sampling, StreamName};

/// Points per frame (body 25, face 70, left hand 21, right hand 21).
pub const POINTS: usize = 137;
const NECK: usize = 1;
const R_SHOULDER: usize = 2;
const L_SHOULDER: usize = 5;
const NOSE: usize = 0;

/// The point range of each stream in the 137-point layout.
pub fn stream_points(stream: StreamName) -> std::ops::Range<usize> {
    match stream {
        StreamName::Body => 0..25,
        StreamName::Face => 25..95,
        StreamName::Hands => 95..137,
    }
}

/// Raw frames of one video: `frames[t]` is 137 x (x, y, c), or None where nobody was seen.
pub struct RawVideo {
    pub frames: Vec<Option<Vec<f32>>>,
}

/// Which frame indices to keep, deterministic.
pub fn sample_indices(len: usize, max_frames: usize, sampling: Sampling) -> Vec<usize> {
    if len <= max_frames {
        return (0..len).collect();
    }
    match sampling {
        Sampling::Uniform => {
            let stride = len.div_ceil(max_frames);
            (0..len).step_by(stride).collect()
        }
        Sampling::Segment => (0..max_frames)
            .map(|i| ((2 * i + 1) * len) / (2 * max_frames))
            .collect(),
    }
}

fn point(frame: &[f32], p: usize) -> Option<(f32, f32)> {
    (frame[p * 3 + 2] > 0.0).then(|| (frame[p * 3], frame[p * 3 + 1]))
}

fn median(mut v: Vec<f32>) -> Option<f32> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f32::total_cmp);
    Some(v[v.len() / 2])
}

/// The body's scale for this video: the median shoulder width, or twice the median
/// nose-neck distance when shoulders are rarely seen; pixels.
fn body_scale(frames: &[&Vec<f32>]) -> f32 {
    let dist = |a: (f32, f32), b: (f32, f32)| ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt();
    let shoulders: Vec<f32> = frames
        .iter()
        .filter_map(|f| Some(dist(point(f, R_SHOULDER)?, point(f, L_SHOULDER)?)))
        .filter(|d| *d > 1.0)
        .collect();
    if shoulders.len() * 4 >= frames.len() {
        return median(shoulders).unwrap_or(100.0);
    }
    let necks: Vec<f32> = frames
        .iter()
        .filter_map(|f| Some(2.0 * dist(point(f, NOSE)?, point(f, NECK)?)))
        .filter(|d| *d > 1.0)
        .collect();
    median(necks).or(median(shoulders)).unwrap_or(100.0)
}

/// Builds the model input of one video: `[frames, 137, channels]` flattened, channels =
/// (x, y, confidence) plus (dx, dy) when `offsets`. Coordinates are centred on the neck (or the
/// shoulders' midpoint) and divided by the body scale; missing points are all zero.
pub fn features(
    video: &RawVideo,
    max_frames: usize,
    sampling: Sampling,
    streams: &[StreamName],
    offsets: bool,
) -> (usize, Vec<f32>) {
    let idx = sample_indices(video.frames.len(), max_frames, sampling);
    let seen: Vec<&Vec<f32>> = video.frames.iter().flatten().collect();
    let scale = body_scale(&seen);
    let mut keep = [false; POINTS];
    for s in streams {
        for p in stream_points(*s) {
            keep[p] = true;
        }
    }
    let channels = if offsets { 5 } else { 3 };
    let mut out = vec![0.0f32; idx.len() * POINTS * channels];
    let mut centre: Option<(f32, f32)> = None;
    let mut previous: Option<Vec<f32>> = None; // normalised (x, y, c) of the previous kept frame
    for (t, &i) in idx.iter().enumerate() {
        let Some(frame) = &video.frames[i] else {
            previous = None;
            continue;
        };
        centre = point(frame, NECK)
            .or_else(|| {
                let (a, b) = (point(frame, R_SHOULDER)?, point(frame, L_SHOULDER)?);
                Some(((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0))
            })
            .or(centre);
        let Some((cx, cy)) = centre else { continue };
        let mut norm = vec![0.0f32; POINTS * 3];
        for p in 0..POINTS {
            if !keep[p] || frame[p * 3 + 2] <= 0.0 {
                continue;
            }
            norm[p * 3] = (frame[p * 3] - cx) / scale;
            norm[p * 3 + 1] = (frame[p * 3 + 1] - cy) / scale;
            norm[p * 3 + 2] = frame[p * 3 + 2];
        }
        for p in 0..POINTS {
            let o = (t * POINTS + p) * channels;
            out[o..o + 3].copy_from_slice(&norm[p * 3..p * 3 + 3]);
            if offsets
                && let Some(prev) = &previous
                && norm[p * 3 + 2] > 0.0
                && prev[p * 3 + 2] > 0.0
            {
                out[o + 3] = norm[p * 3] - prev[p * 3];
                out[o + 4] = norm[p * 3 + 1] - prev[p * 3 + 1];
            }
        }
        previous = Some(norm);
    }
    (idx.len(), out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_is_deterministic_and_bounded() {
        assert_eq!(
            sample_indices(5, 10, Sampling::Uniform),
            vec![0, 1, 2, 3, 4]
        );
        let u = sample_indices(1000, 300, Sampling::Uniform);
        assert!(u.len() <= 300 && u.len() >= 250, "{}", u.len());
        assert_eq!(u[1], 4);
        let s = sample_indices(1000, 10, Sampling::Segment);
        assert_eq!(s, vec![50, 150, 250, 350, 450, 550, 650, 750, 850, 950]);
    }

    /// A frame with the neck at `neck`, shoulders `shoulder_half` px to each side, and face
    /// point 30 `face_up` px above the neck.
    fn frame_with(neck: (f32, f32), shoulder_half: f32, face_up: f32) -> Vec<f32> {
        let mut f = vec![0.0; POINTS * 3];
        let mut set = |p: usize, x: f32, y: f32| {
            f[p * 3] = x;
            f[p * 3 + 1] = y;
            f[p * 3 + 2] = 0.9;
        };
        set(NECK, neck.0, neck.1);
        set(R_SHOULDER, neck.0 - shoulder_half, neck.1);
        set(L_SHOULDER, neck.0 + shoulder_half, neck.1);
        set(30, neck.0, neck.1 - face_up);
        f
    }

    #[test]
    fn features_are_centred_scaled_and_offset() {
        // The body moves right 10 px a frame; the face point rises 10 px a frame relative to
        // the neck (50, gap, 70, 80 px above it). Shoulder width 100 px.
        let video = RawVideo {
            frames: vec![
                Some(frame_with((600.0, 400.0), 50.0, 50.0)),
                None,
                Some(frame_with((620.0, 400.0), 50.0, 70.0)),
                Some(frame_with((630.0, 400.0), 50.0, 80.0)),
            ],
        };
        let all = [StreamName::Body, StreamName::Face, StreamName::Hands];
        let (t, f) = features(&video, 10, Sampling::Uniform, &all, true);
        assert_eq!(t, 4);
        let at = |t: usize, p: usize, c: usize| f[(t * POINTS + p) * 5 + c];
        // Centred on the neck, scaled by the shoulder width (100 px).
        assert_eq!(at(0, NECK, 0), 0.0);
        assert_eq!(at(0, L_SHOULDER, 0), 0.5);
        assert_eq!(at(0, 30, 1), -0.5);
        assert_eq!(at(3, 30, 1), -0.8);
        // The empty frame is all zero.
        assert!((0..POINTS * 5).all(|i| f[POINTS * 5 + i] == 0.0));
        // No offsets at the first frame, nor right after the gap (no previous frame)...
        assert_eq!((at(0, 30, 3), at(0, 30, 4)), (0.0, 0.0));
        assert_eq!((at(2, 30, 3), at(2, 30, 4)), (0.0, 0.0));
        // ...then the change since the previous frame: the face point rose 0.1 body widths.
        assert_eq!(at(3, 30, 3), 0.0);
        assert!((at(3, 30, 4) - -0.1).abs() < 1e-6, "{}", at(3, 30, 4));
        // Centred per frame, so a moving body has zero offsets at the neck.
        assert_eq!(at(3, NECK, 3), 0.0);
        // Dropping the face stream zeroes its points in every frame.
        let (_, nf) = features(&video, 10, Sampling::Uniform, &[StreamName::Body], false);
        assert_eq!(nf[30 * 3 + 2], 0.0);
        assert_eq!(nf[(3 * POINTS + 30) * 3 + 2], 0.0);
        assert_eq!(nf[(3 * POINTS + L_SHOULDER) * 3 + 2], 0.9);
    }
}
