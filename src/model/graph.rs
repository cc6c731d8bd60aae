//! The 137-node OpenPose skeleton as a graph: which keypoints are joined by a bone.
//!
//! Node order is the OpenPose order of the keypoint tables: body 0-24, face 25-94,
//! left hand 95-115, right hand 116-136.

use std::ops::Range;

/// Keypoints per frame.
pub const NUM_POINTS: usize = 137;
/// BODY_25 points.
pub const BODY: Range<usize> = 0..25;
/// The 70 face points.
pub const FACE: Range<usize> = 25..95;
/// Left hand (21 points, wrist first).
pub const LEFT_HAND: Range<usize> = 95..116;
/// Right hand (21 points, wrist first).
pub const RIGHT_HAND: Range<usize> = 116..137;
/// Both hands, the third stream of the paper.
pub const HANDS: Range<usize> = 95..137;

/// The three streams of the paper (body, face, hands), in this order.
pub const STREAMS: [Range<usize>; 3] = [BODY, FACE, HANDS];

const BODY_NOSE: usize = 0;
const BODY_RWRIST: usize = 4;
const BODY_LWRIST: usize = 7;
/// Face point 30 is the tip of the nose bridge, the face point closest to the body's nose.
const FACE_NOSE_TIP: usize = 30;

const BODY_BONES: [(usize, usize); 24] = [
    (1, 8),
    (1, 2),
    (1, 5),
    (2, 3),
    (3, 4),
    (5, 6),
    (6, 7),
    (8, 9),
    (9, 10),
    (10, 11),
    (8, 12),
    (12, 13),
    (13, 14),
    (1, 0),
    (0, 15),
    (15, 17),
    (0, 16),
    (16, 18),
    (14, 19),
    (19, 20),
    (14, 21),
    (11, 22),
    (22, 23),
    (11, 24),
];

const HAND_BONES: [(usize, usize); 20] = [
    (0, 1),
    (1, 2),
    (2, 3),
    (3, 4),
    (0, 5),
    (5, 6),
    (6, 7),
    (7, 8),
    (0, 9),
    (9, 10),
    (10, 11),
    (11, 12),
    (0, 13),
    (13, 14),
    (14, 15),
    (15, 16),
    (0, 17),
    (17, 18),
    (18, 19),
    (19, 20),
];

/// Body bones (BODY_25), in body-local indices.
pub fn body_bones() -> Vec<(usize, usize)> {
    BODY_BONES.to_vec()
}

/// Bones of one hand, in hand-local indices (0 = wrist).
pub fn hand_bones() -> Vec<(usize, usize)> {
    HAND_BONES.to_vec()
}

/// Face bones, in face-local indices (0-69). Points 68 and 69 (pupils) have none.
pub fn face_bones() -> Vec<(usize, usize)> {
    let mut bones = Vec::new();
    let chain = |bones: &mut Vec<(usize, usize)>, first: usize, last: usize| {
        bones.extend((first..last).map(|i| (i, i + 1)));
    };
    let ring = |bones: &mut Vec<(usize, usize)>, first: usize, last: usize| {
        bones.extend((first..last).map(|i| (i, i + 1)));
        bones.push((last, first));
    };
    chain(&mut bones, 0, 16); // jaw
    chain(&mut bones, 17, 21); // right brow
    chain(&mut bones, 22, 26); // left brow
    chain(&mut bones, 27, 30); // nose bridge
    chain(&mut bones, 31, 35); // nostrils
    ring(&mut bones, 36, 41); // right eye
    ring(&mut bones, 42, 47); // left eye
    ring(&mut bones, 48, 59); // outer lips
    ring(&mut bones, 60, 67); // inner lips
    bones
}

/// Edges joining the parts: each hand's wrist point to the body wrist, and the face to the body.
///
/// The face is joined through its nose tip (face point 30, end of the nose bridge) to the
/// body's Nose (body point 0): both sit on the same spot of the head, so this is the shortest
/// anatomical link and lets face features reach the body in one hop.
pub fn joins() -> Vec<(usize, usize)> {
    vec![
        (LEFT_HAND.start, BODY_LWRIST),
        (RIGHT_HAND.start, BODY_RWRIST),
        (FACE.start + FACE_NOSE_TIP, BODY_NOSE),
    ]
}

/// All undirected edges of the 137-node graph, in global indices, each listed once.
pub fn edges() -> Vec<(usize, usize)> {
    let shift = |bones: Vec<(usize, usize)>, offset: usize| {
        bones
            .into_iter()
            .map(move |(a, b)| (a + offset, b + offset))
    };
    let mut edges: Vec<(usize, usize)> = Vec::new();
    edges.extend(shift(body_bones(), BODY.start));
    edges.extend(shift(face_bones(), FACE.start));
    edges.extend(shift(hand_bones(), LEFT_HAND.start));
    edges.extend(shift(hand_bones(), RIGHT_HAND.start));
    edges.extend(joins());
    edges
}

/// `D^-1/2 (A + I) D^-1/2` as a row-major `NUM_POINTS x NUM_POINTS` matrix (symmetric).
///
/// The self-loop keeps each node's own feature; the symmetric normalisation keeps the
/// scale of features independent of a node's number of bones.
pub fn normalized_adjacency() -> Vec<f32> {
    let n = NUM_POINTS;
    let mut a = vec![0.0f64; n * n];
    for i in 0..n {
        a[i * n + i] = 1.0;
    }
    for (i, j) in edges() {
        a[i * n + j] = 1.0;
        a[j * n + i] = 1.0;
    }
    let degree: Vec<f64> = (0..n).map(|i| a[i * n..(i + 1) * n].iter().sum()).collect();
    let mut out = vec![0.0f32; n * n];
    for i in 0..n {
        for j in 0..n {
            if a[i * n + j] != 0.0 {
                out[i * n + j] = (1.0 / (degree[i] * degree[j]).sqrt()) as f32;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn part_edge_counts_match_the_paper() {
        assert_eq!(body_bones().len(), 24);
        assert_eq!(hand_bones().len(), 20);
        // jaw 16 + brows 4 + 4 + bridge 3 + nostrils 4 + eyes 6 + 6 + outer lips 12 + inner 8.
        assert_eq!(face_bones().len(), 63);
        assert_eq!(joins().len(), 3);
        assert_eq!(edges().len(), 24 + 2 * 20 + 63 + 3);
    }

    #[test]
    fn edges_are_unique_in_range_and_without_self_loops() {
        let mut seen = HashSet::new();
        for (a, b) in edges() {
            assert!(a < NUM_POINTS && b < NUM_POINTS);
            assert_ne!(a, b);
            assert!(seen.insert((a.min(b), a.max(b))), "duplicate edge {a}-{b}");
        }
        // Every bone stays inside its part except the three joins.
        let part = |i: usize| {
            [BODY, FACE, LEFT_HAND, RIGHT_HAND]
                .iter()
                .position(|r| r.contains(&i))
        };
        let crossing: Vec<_> = edges()
            .into_iter()
            .filter(|&(a, b)| part(a) != part(b))
            .collect();
        assert_eq!(crossing, joins());
    }

    #[test]
    fn face_has_closed_loops_and_bare_pupils() {
        let face: HashSet<_> = face_bones().into_iter().collect();
        for closing in [(41, 36), (47, 42), (59, 48), (67, 60)] {
            assert!(face.contains(&closing));
        }
        assert!(
            !face.contains(&(16, 17)),
            "jaw and brow are separate chains"
        );
        assert!(face.iter().all(|&(a, b)| a < 68 && b < 68));
    }

    #[test]
    fn wrists_and_face_join_the_body() {
        let e: HashSet<_> = edges().into_iter().collect();
        assert!(e.contains(&(95, 7)), "left hand root to LWrist");
        assert!(e.contains(&(116, 4)), "right hand root to RWrist");
        assert!(e.contains(&(55, 0)), "face nose tip to body Nose");
    }

    #[test]
    fn adjacency_is_symmetric_and_normalised() {
        let n = NUM_POINTS;
        let a = normalized_adjacency();
        assert_eq!(a.len(), n * n);
        let mut degree = vec![1usize; n];
        for (i, j) in edges() {
            degree[i] += 1;
            degree[j] += 1;
        }
        for i in 0..n {
            let nonzero = (0..n).filter(|&j| a[i * n + j] != 0.0).count();
            assert_eq!(nonzero, degree[i], "row {i}");
            for j in 0..n {
                assert_eq!(a[i * n + j], a[j * n + i]);
                if a[i * n + j] != 0.0 {
                    let expected = 1.0 / ((degree[i] * degree[j]) as f64).sqrt();
                    assert!((a[i * n + j] as f64 - expected).abs() < 1e-6);
                }
            }
        }
        // Pupils (face 68, 69) only have their self-loop.
        assert_eq!(a[93 * n + 93], 1.0);
        assert_eq!(degree[94], 1);
        // Body neck: nose, both shoulders, mid hip, itself.
        assert_eq!(degree[1], 5);
    }
}
