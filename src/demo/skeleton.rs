//! The pose model: a seated player seen from the front in a 1280x720 press-conference shot,
//! upper body only (legs hidden by the desk), built from a per-subject template, animated by
//! slow posture changes and by the labelled micro-gesture clips, then degraded like OpenPose
//! output (jitter, confidence noise, dropped hands, lost frames).
//!
//! Image coordinates: x to the right, y down. The player faces the camera, so the subject's right
//! side (BODY_25 "R" points, right hand) is on the image's left.

use super::classes::{FaceSpot, Motion, motion_of};
use super::plan::{FPS, STREAM_KEYPOINTS, STREAM_LOOK, Subject, VideoPlan, rng_for};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, LogNormal, Normal, StandardNormal};
use std::f64::consts::{FRAC_PI_2, PI, TAU};

pub(crate) const WIDTH: f64 = 1280.0;
pub(crate) const HEIGHT: f64 = 720.0;
pub(crate) const N_BODY: usize = 25;
pub(crate) const N_FACE: usize = 70;
pub(crate) const N_HAND: usize = 21;
pub(crate) const N_POINTS: usize = N_BODY + N_FACE + 2 * N_HAND;
const FACE0: usize = N_BODY;
const LHAND0: usize = FACE0 + N_FACE;
const RHAND0: usize = LHAND0 + N_HAND;

/// One person's 137 keypoints as (x, y, confidence); a missing point is all zeros.
pub(crate) type Person = [[f64; 3]; N_POINTS];

/// What the detector reports for one frame.
pub(crate) struct FrameOut {
    /// `false`: the detector lost the player (an empty `people` list / a row of zeros).
    pub present: bool,
    pub player: Person,
    /// A second, partly visible person (an interviewer at the edge), only shown in JSON output.
    pub has_second: bool,
    pub second: Person,
    /// The frame's JSON file is missing (real dumps have gaps); tables still hold the row.
    pub skip_file: bool,
}

impl FrameOut {
    pub(crate) fn new() -> Self {
        FrameOut {
            present: false,
            player: [[0.0; 3]; N_POINTS],
            has_second: false,
            second: [[0.0; 3]; N_POINTS],
            skip_file: false,
        }
    }
}

type V2 = [f64; 2];

fn add(a: V2, b: V2) -> V2 {
    [a[0] + b[0], a[1] + b[1]]
}
fn sub(a: V2, b: V2) -> V2 {
    [a[0] - b[0], a[1] - b[1]]
}
fn scale(a: V2, k: f64) -> V2 {
    [a[0] * k, a[1] * k]
}
fn lerp(a: V2, b: V2, t: f64) -> V2 {
    [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t]
}
fn rot(a: V2, ang: f64) -> V2 {
    let (s, c) = ang.sin_cos();
    [a[0] * c - a[1] * s, a[0] * s + a[1] * c]
}
fn len(a: V2) -> f64 {
    a[0].hypot(a[1])
}
fn smoothstep(t: f64) -> f64 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}
/// Blends two angles the short way round.
fn lerp_angle(a: f64, b: f64, t: f64) -> f64 {
    let mut d = (b - a) % TAU;
    if d > PI {
        d -= TAU;
    } else if d < -PI {
        d += TAU;
    }
    a + d * t
}

/// The face template: 70 points (x, y, depth) in units of the face half-width, origin at the
/// head centre, depth towards the camera. Follows the OpenPose/iBUG 68 layout plus 2 pupils.
fn face_template(rng: &mut ChaCha8Rng) -> [[f64; 3]; N_FACE] {
    let mut v = |sd: f64| -> f64 { sd * rng.sample::<f64, _>(StandardNormal) };
    let jaw_w = 1.0 + v(0.05);
    let chin = 1.05 + v(0.07);
    let eye_dx = 0.42 + v(0.03);
    let eye_y = -0.5 + v(0.04);
    let brow_y = -0.88 + v(0.05);
    let mouth_w = 0.38 + v(0.04);
    let mouth_y = 0.47 + v(0.04);
    let nose_w = 0.22 + v(0.02);
    let mut f = [[0.0; 3]; N_FACE];
    // Depth of a point on the face surface (a rounded front), nose sticking out.
    let depth = |x: f64| 0.75 * (1.0 - 0.8 * x * x).max(0.05).sqrt();
    // Jaw 0..=16: from the right temple round the chin to the left temple.
    for (i, p) in f.iter_mut().take(17).enumerate() {
        let t = PI * i as f64 / 16.0;
        let x = -t.cos() * jaw_w;
        let y = -0.4 + t.sin() * (chin + 0.4);
        *p = [x, y, depth(x) - 0.25];
    }
    // Brows 17..=21 (right) and 22..=26 (left), arched.
    for k in 0..5 {
        let t = k as f64 / 4.0;
        let arch = 0.12 * (PI * t).sin();
        let xr = -0.82 + 0.66 * t;
        f[17 + k] = [xr, brow_y - arch, depth(xr)];
        let xl = 0.16 + 0.66 * t;
        f[22 + k] = [xl, brow_y - 0.12 * (PI * t).sin(), depth(xl)];
    }
    // Nose bridge 27..=30 down to the tip, then nostrils 31..=35.
    for k in 0..4 {
        let t = k as f64 / 3.0;
        f[27 + k] = [0.0, -0.58 + 0.58 * t, 0.8 + 0.4 * t];
    }
    for k in 0..5 {
        let t = k as f64 / 4.0 - 0.5;
        f[31 + k] = [2.0 * t * nose_w, 0.14 + 0.05 * (1.0 - 4.0 * t * t), 0.95];
    }
    // Eyes: 36..=41 right (outer corner first), 42..=47 left (inner corner first).
    let eye = |cx: f64, k: usize, outer_first: bool| -> [f64; 3] {
        // Six points round an almond: corner, two top, corner, two bottom.
        let a = [PI, 2.2, 1.0, 0.0, -1.0, -2.2][k];
        let a = if outer_first == (cx < 0.0) { a } else { PI - a };
        let x = cx + 0.16 * a.cos();
        let y = eye_y - 0.07 * a.sin();
        [x, y, depth(x)]
    };
    for k in 0..6 {
        f[36 + k] = eye(-eye_dx, k, true);
        f[42 + k] = eye(eye_dx, k, false);
    }
    // Outer lips 48..=59 and inner lips 60..=67, both loops starting at the right corner.
    for k in 0..12 {
        let a = PI - TAU * k as f64 / 12.0;
        let x = mouth_w * a.cos();
        let y = mouth_y - 0.13 * a.sin();
        f[48 + k] = [x, y, depth(x) + 0.05];
    }
    for k in 0..8 {
        let a = PI - TAU * k as f64 / 8.0;
        let x = 0.72 * mouth_w * a.cos();
        let y = mouth_y - 0.03 * a.sin();
        f[60 + k] = [x, y, depth(x) + 0.05];
    }
    // Pupils.
    f[68] = [-eye_dx, eye_y, depth(eye_dx) + 0.02];
    f[69] = [eye_dx, eye_y, depth(eye_dx) + 0.02];
    f
}

/// Hand template: for points 1..=20, (distance along the hand, distance across it) in units of
/// the hand length, for a flat open hand; fingers fan out from the knuckles.
/// Per finger: base knuckle (along, across), fan angle, three segment lengths.
const FINGERS: [(V2, f64, [f64; 3]); 5] = [
    ([0.12, -0.16], -0.85, [0.17, 0.14, 0.12]), // thumb: from the CMC joint
    ([0.45, -0.13], -0.14, [0.21, 0.13, 0.11]), // index
    ([0.47, -0.03], -0.03, [0.23, 0.14, 0.12]), // middle
    ([0.45, 0.07], 0.08, [0.21, 0.13, 0.11]),   // ring
    ([0.41, 0.16], 0.2, [0.16, 0.1, 0.09]),     // pinky
];

/// The 21 hand points for a wrist, a pointing direction and a curl (0 = flat, 1 = fist).
/// `mirror` is +1 for the right hand and -1 for the left (thumbs face each other).
fn hand_points(wrist: V2, angle: f64, length: f64, curl: f64, mirror: f64) -> [V2; N_HAND] {
    let mut out = [wrist; N_HAND];
    let along = [angle.cos(), angle.sin()];
    let across = scale([-along[1], along[0]], mirror);
    let local = |a: f64, c: f64| {
        add(
            wrist,
            add(scale(along, a * length), scale(across, c * length)),
        )
    };
    for (k, (base, fan, segs)) in FINGERS.iter().enumerate() {
        let mut p = local(base[0], base[1]);
        out[1 + 4 * k] = p;
        // A curled finger looks shorter and bends across the palm.
        let mut dir = angle + mirror * fan;
        for (j, seg) in segs.iter().enumerate() {
            dir += mirror * curl * 0.35 * (j as f64 + 1.0) * if k == 0 { 0.5 } else { 1.0 };
            let l = seg * length * (1.0 - 0.45 * curl);
            p = add(p, [dir.cos() * l, dir.sin() * l]);
            out[2 + 4 * k + j] = p;
        }
    }
    out
}

/// Elbow position for a shoulder, a wrist and the two arm lengths (2-link IK), bent outwards
/// and downwards like a seated person's arm. `outward` is -1 for the right arm, +1 for the left.
fn elbow(shoulder: V2, wrist: V2, upper: f64, fore: f64, outward: f64) -> V2 {
    let d_vec = sub(wrist, shoulder);
    let d = len(d_vec)
        .clamp((upper - fore).abs() + 1e-3, (upper + fore) * 0.999)
        .max(1e-3);
    let dir = scale(d_vec, 1.0 / len(d_vec).max(1e-9));
    let cos_a = ((upper * upper + d * d - fore * fore) / (2.0 * upper * d)).clamp(-1.0, 1.0);
    let a = cos_a.acos();
    let e1 = add(shoulder, scale(rot(dir, a), upper));
    let e2 = add(shoulder, scale(rot(dir, -a), upper));
    let score = |e: V2| outward * (e[0] - shoulder[0]) + (e[1] - shoulder[1]);
    if score(e1) >= score(e2) { e1 } else { e2 }
}

/// A subject's build and habits (from the seed and the subject id, shared by all their videos).
struct Look {
    /// Shoulder half-width in pixels: the unit of the body.
    u: f64,
    neck: V2,
    /// Height of the head centre above the neck, in `u`.
    neck_len: f64,
    /// Face half-width, in `u`.
    face: f64,
    /// Right shoulder lower than the left by this much, in `u`.
    shoulder_tilt: f64,
    yaw: f64,
    pitch: f64,
    roll: f64,
    /// Resting wrists relative to the neck, in `u`: [right, left].
    rest: [V2; 2],
    /// Resting hand directions (radians): [right, left].
    rest_angle: [f64; 2],
    curl: f64,
    /// Overall detector confidence for this person.
    conf: f64,
    right_handed: bool,
    /// How much the hands wander when idle, in `u`.
    restless: f64,
    face_pts: [[f64; 3]; N_FACE],
}

impl Look {
    fn new(seed: u64, subject: &Subject) -> Self {
        let mut rng = rng_for(seed, STREAM_LOOK, subject.id as u64);
        let mut n = |mean: f64, sd: f64| mean + sd * rng.sample::<f64, _>(StandardNormal);
        // Women are on average a bit smaller in the frame.
        let size = if subject.female { 165.0 } else { 182.0 };
        let u = n(size, 15.0).clamp(125.0, 220.0);
        let neck = [
            n(630.0, 55.0).clamp(420.0, 840.0),
            n(372.0, 22.0).clamp(310.0, 440.0),
        ];
        let neck_len = n(0.56, 0.04);
        let face = n(0.42, 0.03);
        let shoulder_tilt = n(0.0, 0.04);
        let yaw = n(0.0, 0.25);
        let pitch = n(0.0, 0.08);
        let roll = n(0.0, 0.05);
        let rest = [[n(-0.5, 0.15), n(1.4, 0.08)], [n(0.45, 0.15), n(1.4, 0.08)]];
        let rest_angle = [n(0.35, 0.3), PI - n(0.35, 0.3)];
        let curl = n(0.35, 0.15).clamp(0.0, 0.9);
        let conf = n(0.66, 0.06).clamp(0.45, 0.85);
        let restless = n(0.04, 0.015).clamp(0.005, 0.1);
        let right_handed = rng.random_bool(0.8);
        let face_pts = face_template(&mut rng);
        Look {
            u,
            neck,
            neck_len,
            face,
            shoulder_tilt,
            yaw,
            pitch,
            roll,
            rest,
            rest_angle,
            curl,
            conf,
            right_handed,
            restless,
            face_pts,
        }
    }
}

/// Where the player sits and looks; changes in steps (a new question, a new journalist to look
/// at), with smooth transitions, so that most frames are almost still.
#[derive(Clone, Copy, Default)]
struct Posture {
    dx: f64,
    dy: f64,
    yaw: f64,
    pitch: f64,
    roll: f64,
    talking: f64,
}

impl Posture {
    fn blend(&self, o: &Posture, t: f64) -> Posture {
        let l = |a: f64, b: f64| a + (b - a) * t;
        Posture {
            dx: l(self.dx, o.dx),
            dy: l(self.dy, o.dy),
            yaw: l(self.yaw, o.yaw),
            pitch: l(self.pitch, o.pitch),
            roll: l(self.roll, o.roll),
            talking: l(self.talking, o.talking),
        }
    }
}

/// Per-clip rendering choices, drawn once when the video starts.
struct ClipStyle {
    start: u32,
    end: u32,
    motion: Motion,
    /// 0 = right hand, 1 = left hand (for one-hand motions).
    hand: usize,
    intensity: f64,
    /// Oscillation frequency (Hz) and phase for rubbing, shaking, nodding...
    freq: f64,
    phase: f64,
    /// Small offset of the touched spot, in face units.
    spot: V2,
}

impl ClipStyle {
    /// Rise-hold-fall envelope of the clip at frame `f`, times its intensity.
    fn weight(&self, f: u32) -> f64 {
        if f < self.start || f > self.end {
            return 0.0;
        }
        let n = f64::from(self.end - self.start);
        let ramp = (0.3 * n).clamp(2.0, 15.0);
        let t = f64::from(f - self.start);
        smoothstep(t / ramp) * smoothstep((n - t) / ramp) * self.intensity
    }
    fn osc(&self, f: u32) -> f64 {
        let t = f64::from(f - self.start) / FPS;
        (TAU * self.freq * t + self.phase).sin()
    }
    fn osc_slow(&self, f: u32) -> f64 {
        let t = f64::from(f - self.start) / FPS;
        (TAU * self.freq / 3.0 * t + self.phase).sin()
    }
}

/// A Markov on/off process for detector dropouts: `rate` of frames off, in runs of `run` frames
/// on average.
struct Dropout {
    on: bool,
    p_start: f64,
    p_end: f64,
}

impl Dropout {
    fn new(rate: f64, run: f64) -> Self {
        Dropout {
            on: false,
            p_start: rate / (run * (1.0 - rate)),
            p_end: 1.0 / run,
        }
    }
    fn step(&mut self, rng: &mut ChaCha8Rng) -> bool {
        self.on = if self.on {
            !rng.random_bool(self.p_end)
        } else {
            rng.random_bool(self.p_start)
        };
        self.on
    }
}

/// Base confidence per body point (BODY_25 order); legs are never seen.
const BODY_CONF: [f64; N_BODY] = [
    0.88, 0.62, 0.55, 0.45, 0.55, 0.55, 0.45, 0.55, 0.28, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.86, 0.86,
    0.72, 0.72, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
];

/// Renders one video frame by frame. All randomness comes from the video's own RNG, drawn in
/// the same order whatever the output format, so tables and JSON agree.
pub(crate) struct Renderer {
    look: Look,
    rng: ChaCha8Rng,
    clips: Vec<ClipStyle>,
    next_clip: usize,
    active: Vec<usize>,
    cam: V2,
    zoom: f64,
    /// The planted label signal: how much lower the head sits, in shoulder half-widths
    /// (see `signal.rs`).
    slump: f64,
    from: Posture,
    to: Posture,
    t0: u32,
    dur: u32,
    next_change: u32,
    talk_phase: f64,
    idle_phase: [f64; 4],
    prev: [V2; N_POINTS],
    has_prev: bool,
    lost: Dropout,
    hand_gone: [Dropout; 2],
    second: Dropout,
    second_anchor: V2,
    gap: Dropout,
}

impl Renderer {
    pub(crate) fn new(seed: u64, video: &VideoPlan, subject: &Subject) -> Self {
        let look = Look::new(seed, subject);
        let mut rng = rng_for(seed, STREAM_KEYPOINTS, u64::from(video.id));
        let normal = |rng: &mut ChaCha8Rng, sd: f64| sd * rng.sample::<f64, _>(StandardNormal);
        let cam = [normal(&mut rng, 30.0), normal(&mut rng, 12.0)];
        let zoom = LogNormal::new(0.0, 0.06).unwrap().sample(&mut rng);
        let clips = video
            .clips
            .iter()
            .map(|c| {
                let main = if look.right_handed { 0 } else { 1 };
                ClipStyle {
                    start: c.start,
                    end: c.end,
                    motion: motion_of(c.class),
                    hand: if rng.random_bool(0.75) {
                        main
                    } else {
                        1 - main
                    },
                    intensity: rng.random_range(0.85..1.0),
                    freq: rng.random_range(1.4..3.0),
                    phase: rng.random_range(0.0..TAU),
                    spot: [normal(&mut rng, 0.08), normal(&mut rng, 0.08)],
                }
            })
            .collect();
        let talk_phase = rng.random_range(0.0..TAU);
        let idle_phase = [
            rng.random_range(0.0..TAU),
            rng.random_range(0.0..TAU),
            rng.random_range(0.0..TAU),
            rng.random_range(0.0..TAU),
        ];
        let mut r = Renderer {
            look,
            rng,
            clips,
            next_clip: 0,
            active: Vec::new(),
            cam,
            zoom,
            slump: super::signal::slump(seed, video),
            from: Posture::default(),
            to: Posture::default(),
            t0: 0,
            dur: 1,
            next_change: 0,
            talk_phase,
            idle_phase,
            prev: [[0.0; 2]; N_POINTS],
            has_prev: false,
            lost: Dropout::new(0.005, 3.0),
            hand_gone: [Dropout::new(0.03, 12.0), Dropout::new(0.012, 12.0)],
            second: Dropout::new(0.002, 6.0),
            second_anchor: [0.0; 2],
            gap: Dropout::new(0.005, 2.0),
        };
        r.to = r.new_posture();
        r.from = r.to;
        r
    }

    fn new_posture(&mut self) -> Posture {
        let mut n = |sd: f64| sd * self.rng.sample::<f64, _>(StandardNormal);
        Posture {
            dx: n(50.0),
            dy: n(9.0),
            yaw: n(0.3),
            pitch: n(0.14),
            roll: n(0.04),
            talking: if self.rng.random_bool(0.7) { 1.0 } else { 0.0 },
        }
    }

    fn posture(&mut self, f: u32) -> Posture {
        if f >= self.next_change {
            let now = self.from.blend(&self.to, self.progress(f));
            self.from = now;
            self.to = self.new_posture();
            self.t0 = f;
            self.dur = self.rng.random_range(12..60);
            let hold = Exp::new(1.0 / 300.0).unwrap().sample(&mut self.rng);
            self.next_change = f + self.dur + 40 + hold as u32;
        }
        self.from.blend(&self.to, self.progress(f))
    }

    fn progress(&self, f: u32) -> f64 {
        smoothstep(f64::from(f.saturating_sub(self.t0)) / f64::from(self.dur))
    }

    /// Renders frame `f` (frames must be asked for in order 0, 1, 2...).
    pub(crate) fn frame(&mut self, f: u32, out: &mut FrameOut) {
        let pos = self.posture(f);
        while self.next_clip < self.clips.len() && self.clips[self.next_clip].start <= f {
            self.active.push(self.next_clip);
            self.next_clip += 1;
        }
        let clips = &self.clips;
        self.active.retain(|&i| clips[i].end >= f);

        let lk = &self.look;
        // Whole-body and head modifiers from the active clips.
        let (mut shoulder_up, mut head_dy, mut torso, mut lean) = (0.0, 0.0, [0.0, 0.0], 0.0);
        let (mut yaw, mut pitch, mut roll) =
            (lk.yaw + pos.yaw, lk.pitch + pos.pitch, lk.roll + pos.roll);
        let mut hand_busy = 0.0f64;
        for &i in &self.active {
            let c = &self.clips[i];
            let w = c.weight(f);
            let side = if c.hand == 0 { -1.0 } else { 1.0 };
            match c.motion {
                Motion::Shrug { head_down } => {
                    shoulder_up += 0.17 * w;
                    if head_down {
                        head_dy += 0.1 * w;
                    }
                }
                Motion::HeadShake => yaw += 0.3 * w * c.osc(f),
                Motion::HeadNod => pitch += 0.16 * w * c.osc(f),
                Motion::HeadBow => {
                    pitch += 0.35 * w;
                    head_dy += 0.06 * w;
                }
                Motion::HeadUp => pitch -= 0.25 * w,
                Motion::HeadTilt => roll += side * 0.18 * w,
                // A sway is slower than a shake: a third of the clip's frequency.
                Motion::TorsoSway => torso[0] += 0.2 * w * c.osc_slow(f),
                Motion::SitUp => torso[1] -= 0.12 * w,
                Motion::LeanForward => {
                    lean += w;
                    torso[1] += 0.08 * w;
                }
                _ => hand_busy = hand_busy.max(w),
            }
        }

        let u = lk.u * self.zoom * (1.0 + 0.08 * lean);
        let neck = [
            lk.neck[0] + self.cam[0] + pos.dx + torso[0] * u,
            lk.neck[1] + self.cam[1] + pos.dy + (torso[1] - 0.3 * shoulder_up) * u,
        ];
        let r_sh = add(neck, [-u, (lk.shoulder_tilt - shoulder_up) * u]);
        let l_sh = add(neck, [u, (-lk.shoulder_tilt - shoulder_up) * u]);
        let head = add(
            add(neck, rot([0.0, -lk.neck_len * u], roll)),
            [0.0, (head_dy + 0.3 * pitch + self.slump) * u],
        );
        let fw = lk.face * u;
        let (sy, cy) = yaw.sin_cos();
        let (sp, cp) = pitch.sin_cos();
        // Face-space point -> image point and its depth after turning (for visibility).
        let project = |p: [f64; 3]| -> (V2, f64) {
            let x1 = p[0] * cy + p[2] * sy;
            let z1 = -p[0] * sy + p[2] * cy;
            let y2 = p[1] * cp + z1 * sp;
            let z2 = -p[1] * sp + z1 * cp;
            (add(head, scale(rot([x1, y2], roll), fw)), z2)
        };

        // Clean (noise-free) positions and a visibility factor for every point.
        let mut pts = [[0.0f64; 2]; N_POINTS];
        let mut vis = [0.0f64; N_POINTS];

        // Face, with a talking mouth.
        let talk =
            pos.talking * (0.5 + 0.5 * (TAU * 3.5 * f64::from(f) / FPS + self.talk_phase).sin());
        let open = 0.09 * talk;
        for (k, p) in lk.face_pts.iter().enumerate() {
            let mut p = *p;
            match k {
                5..=11 => p[1] += 0.3 * open,
                55..=59 | 65..=67 => p[1] += open,
                _ => {}
            }
            let (xy, z) = project(p);
            pts[FACE0 + k] = xy;
            // Points turned away from the camera are detected less surely.
            vis[FACE0 + k] = (0.75 + 0.6 * z).clamp(0.15, 1.0);
        }
        // Head points of the body come from the face model, so both agree.
        let (r_ear, zr) = project([-1.05, -0.3, -0.1]);
        let (l_ear, zl) = project([1.05, -0.3, -0.1]);
        pts[0] = pts[FACE0 + 30];
        pts[15] = pts[FACE0 + 68];
        pts[16] = pts[FACE0 + 69];
        pts[17] = r_ear;
        pts[18] = l_ear;
        vis[0] = 1.0;
        vis[15] = vis[FACE0 + 68];
        vis[16] = vis[FACE0 + 69];
        // An ear turned away is not detected at all.
        vis[17] = if zr > -0.22 { 1.0 } else { 0.0 };
        vis[18] = if zl > -0.22 { 1.0 } else { 0.0 };
        pts[1] = neck;
        pts[2] = r_sh;
        pts[5] = l_sh;
        pts[8] = add(neck, [0.1 * torso[0] * u, 2.02 * u]);
        for i in [1, 2, 5, 8] {
            vis[i] = 1.0;
        }

        // Hands: rest pose plus idle wandering, then pulled by the active clips.
        let fs = f64::from(f) / FPS;
        let mut wrist = [0, 1].map(|h| {
            let wander = [
                (TAU * 0.13 * fs + self.idle_phase[2 * h]).sin(),
                (TAU * 0.09 * fs + self.idle_phase[2 * h + 1]).sin(),
            ];
            add(neck, scale(add(lk.rest[h], scale(wander, lk.restless)), u))
        });
        let mut angle = lk.rest_angle;
        let mut curl = [lk.curl; 2];
        let hand_len = 0.62 * u;
        let face_at = |x: f64, y: f64| project([x, y, 0.5]).0;
        for &i in &self.active {
            let c = &self.clips[i];
            let w = c.weight(f);
            if w <= 0.0 {
                continue;
            }
            let h = c.hand;
            let s = if h == 0 { -1.0 } else { 1.0 };
            // Fingertips reach `tip`; the wrist sits below and outside it.
            let reach = |tip: V2, out: f64, down: f64| -> (V2, f64) {
                let wr = add(tip, scale([s * out, down], hand_len));
                let d = sub(tip, wr);
                (wr, d[1].atan2(d[0]))
            };
            let mut targets: Vec<(usize, V2, f64, f64)> = Vec::with_capacity(2);
            match c.motion {
                Motion::Touch(spot) => {
                    let (x, y) = match spot {
                        FaceSpot::Eye => (0.42, -0.5),
                        FaceSpot::Forehead => (0.2, -1.0),
                        FaceSpot::HairTop => (0.35, -1.6),
                        FaceSpot::HairSide => (1.05, -0.9),
                        FaceSpot::Cheek => (0.65, 0.15),
                        FaceSpot::Mouth => (0.1, 0.47),
                        FaceSpot::Ear => (1.05, -0.25),
                        FaceSpot::Chin => (0.1, 1.05),
                    };
                    let tip = face_at(s * x + c.spot[0], y + c.spot[1]);
                    let (mut wr, a) = reach(tip, 0.25, 0.7);
                    // Rubbing/scratching: a small back-and-forth at the spot.
                    wr[0] += 0.04 * u * c.osc(f);
                    targets.push((h, wr, a, 0.3));
                }
                Motion::TouchNeck { low } => {
                    let tip = add(neck, [s * 0.05 * u, if low { 0.06 } else { -0.14 } * u]);
                    let (wr, a) = reach(tip, 0.3, 0.7);
                    targets.push((h, wr, a, 0.25));
                }
                Motion::CoverFace => {
                    for (hh, ss) in [(0, -1.0), (1, 1.0)] {
                        let tip = face_at(ss * 0.35, -0.1);
                        let wr = add(tip, scale([ss * 0.15, 1.0], hand_len));
                        let d = sub(tip, wr);
                        targets.push((hh, wr, d[1].atan2(d[0]), 0.1));
                    }
                }
                Motion::FoldArms => {
                    targets.push((0, add(neck, [0.55 * u, 1.0 * u]), 0.1, 0.55));
                    targets.push((1, add(neck, [-0.6 * u, 0.95 * u]), PI - 0.1, 0.55));
                }
                Motion::HandsTogether { rub, high } => {
                    let y = if high { 0.95 } else { 1.35 } * u;
                    let wob = if rub { 0.06 * u * c.osc(f) } else { 0.0 };
                    targets.push((0, add(neck, [-0.18 * u + wob, y]), -FRAC_PI_2 + 0.5, 0.2));
                    targets.push((1, add(neck, [0.18 * u - wob, y]), -FRAC_PI_2 - 0.5, 0.2));
                }
                Motion::Akimbo => {
                    targets.push((0, add(neck, [-1.05 * u, 2.0 * u]), 0.3, 0.6));
                    targets.push((1, add(neck, [1.05 * u, 2.0 * u]), PI - 0.3, 0.6));
                }
                Motion::ScratchArm => {
                    let tip = add(neck, [-s * 1.0 * u, (0.55 + 0.06 * c.osc(f)) * u]);
                    let wr = add(tip, scale([s * 0.55, 0.45], hand_len));
                    let d = sub(tip, wr);
                    targets.push((h, wr, d[1].atan2(d[0]), 0.5));
                }
                Motion::TouchLeg => {
                    targets.push((h, add(neck, [s * 0.5 * u, 2.4 * u]), FRAC_PI_2, 0.3));
                }
                Motion::Fidget { both } => {
                    for hh in 0..2 {
                        if !both && hh != h {
                            continue;
                        }
                        let k = if hh == 0 { 1.0 } else { 1.3 };
                        let jig = [c.osc(f) * 0.1 * u, (c.osc(f) * k).sin() * 0.06 * u];
                        let a = angle[hh] + 0.3 * c.osc(f);
                        targets.push((hh, add(wrist[hh], jig), a, lk.curl + 0.3 * c.osc(f).abs()));
                    }
                }
                Motion::Idle => {
                    let lift = add(wrist[h], [s * 0.12 * u, -0.2 * u]);
                    targets.push((h, lift, angle[h], curl[h]));
                }
                Motion::Shrug { head_down: false } => {
                    for (hh, ss) in [(0, -1.0), (1, 1.0)] {
                        targets.push((
                            hh,
                            add(wrist[hh], [ss * 0.12 * u, -0.05 * u]),
                            angle[hh],
                            0.1,
                        ));
                    }
                }
                _ => {}
            }
            for (hh, wr, a, cu) in targets {
                wrist[hh] = lerp(wrist[hh], wr, w);
                angle[hh] = lerp_angle(angle[hh], a, w);
                curl[hh] += (cu - curl[hh]) * w;
            }
        }
        // The forearm points partly at the camera, so it looks short.
        let upper = 1.2 * u;
        let fore = 0.75 * u;
        pts[4] = wrist[0];
        pts[7] = wrist[1];
        pts[3] = elbow(r_sh, wrist[0], upper, fore, -1.0);
        pts[6] = elbow(l_sh, wrist[1], upper, fore, 1.0);
        for i in [3, 4, 6, 7] {
            vis[i] = 1.0;
        }
        let rh = hand_points(wrist[0], angle[0], hand_len, curl[0].clamp(0.0, 1.0), 1.0);
        let lh = hand_points(wrist[1], angle[1], hand_len, curl[1].clamp(0.0, 1.0), -1.0);
        for k in 0..N_HAND {
            pts[RHAND0 + k] = rh[k];
            pts[LHAND0 + k] = lh[k];
            // Fingertips are found less surely than knuckles.
            let tip = if k > 0 && k % 4 == 0 { 0.8 } else { 1.0 };
            vis[RHAND0 + k] = tip;
            vis[LHAND0 + k] = tip;
        }

        self.emit(&pts, &vis, hand_busy, out);
    }

    /// Adds detector noise and dropouts to the clean pose and fills `out`.
    fn emit(&mut self, pts: &[V2; N_POINTS], vis: &[f64; N_POINTS], busy: f64, out: &mut FrameOut) {
        let rng = &mut self.rng;
        let lost = self.lost.step(rng);
        let gone = [self.hand_gone[0].step(rng), self.hand_gone[1].step(rng)];
        let second = self.second.step(rng);
        out.skip_file = self.gap.step(rng);
        // Now and then OpenPose re-locks on a slightly different pose for one frame.
        let glitch = if rng.random_bool(0.04) { 25.0 } else { 1.0 };
        let conf_scale = self.look.conf / 0.6;
        let in_image = |p: V2| p[0] >= 0.0 && p[0] < WIDTH && p[1] >= 0.0 && p[1] < HEIGHT;
        for i in 0..N_POINTS {
            let (base, sd) = if i < N_BODY {
                (BODY_CONF[i], 0.02)
            } else if i < LHAND0 {
                let k = i - FACE0;
                // Jaw ends and brows are the face's weakest points.
                let b = if k <= 1 || (15..=21).contains(&k) || k == 16 {
                    0.5
                } else {
                    0.72
                };
                (b, 0.03)
            } else {
                (0.58, 0.15 * (1.0 + 4.0 * busy))
            };
            let sd = sd * glitch;
            let jx = sd * rng.sample::<f64, _>(StandardNormal);
            let jy = sd * rng.sample::<f64, _>(StandardNormal);
            let cn: f64 = rng.sample(StandardNormal);
            let p = [pts[i][0] + jx, pts[i][1] + jy];
            let speed = if self.has_prev {
                len(sub(pts[i], self.prev[i]))
            } else {
                0.0
            };
            let hand = if i >= RHAND0 {
                Some(0)
            } else if i >= LHAND0 {
                Some(1)
            } else {
                None
            };
            let wrist_out = match hand {
                Some(0) => !in_image(pts[4]),
                Some(_) => !in_image(pts[7]),
                None => false,
            };
            let hidden = vis[i] <= 0.0
                || base <= 0.0
                || !in_image(p)
                || hand.is_some_and(|h| gone[h])
                || wrist_out;
            out.player[i] = if hidden {
                [0.0; 3]
            } else {
                let c = base * vis[i] * conf_scale / (1.0 + speed / 12.0) + 0.05 * cn;
                [p[0], p[1], c.clamp(0.02, 0.98)]
            };
        }
        self.prev = *pts;
        self.has_prev = true;
        out.present = !lost;
        out.has_second = second;
        if second {
            if self.second_anchor == [0.0; 2] {
                let left = self.rng.random_bool(0.5);
                let x = if left {
                    self.rng.random_range(10.0..110.0)
                } else {
                    self.rng.random_range(1170.0..1270.0)
                };
                self.second_anchor = [x, self.rng.random_range(300.0..480.0)];
            }
            self.interviewer(&mut out.second);
        } else {
            self.second_anchor = [0.0; 2];
        }
    }

    /// A second person cut by the frame edge: head and one shoulder, low confidence.
    fn interviewer(&mut self, scratch: &mut Person) {
        let a = self.second_anchor;
        let u = 90.0;
        let mut n = || Normal::new(0.0, 1.5).unwrap().sample(&mut self.rng);
        *scratch = [[0.0; 3]; N_POINTS];
        let body: [(usize, V2); 6] = [
            (0, [0.0, -0.55]),
            (1, [0.0, 0.0]),
            (2, [-1.0, 0.05]),
            (5, [1.0, 0.05]),
            (15, [-0.12, -0.68]),
            (16, [0.12, -0.68]),
        ];
        for (i, off) in body {
            let p = add(a, scale(off, u));
            if p[0] >= 0.0 && p[0] < WIDTH {
                scratch[i] = [p[0] + n(), p[1] + n(), 0.15 + 0.2 * n().abs() / 1.5];
            }
        }
        let look = &self.look;
        for (k, fp) in look.face_pts.iter().enumerate() {
            let p = add(add(a, [0.0, -0.6 * u]), scale([fp[0], fp[1]], 0.4 * u));
            if p[0] >= 0.0 && p[0] < WIDTH {
                scratch[FACE0 + k] = [p[0], p[1], 0.08 + 0.02 * (k % 7) as f64];
            }
        }
    }
}
