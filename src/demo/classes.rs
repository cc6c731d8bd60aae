//! The 32 micro-gesture classes of the synthetic dataset: how often each occurs, how it moves
//! the body, and how (weakly) its rate depends on the video's Win/Lose label.
//!
//! The motion given to each class is our own loose reading of the iMiGUE class families
//! (face touching, arm folding, head movements, shoulder moves, hand fidgeting...); the exact
//! mapping is a modelling choice of this generator, not a fact of the dataset.

/// Which face location a touching hand reaches, in face-template coordinates (see skeleton.rs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum FaceSpot {
    Eye,
    Forehead,
    HairTop,
    HairSide,
    Cheek,
    Mouth,
    Ear,
    Chin,
}

/// How a class moves the skeleton while its clip is active.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Motion {
    /// One hand goes to a spot on the face.
    Touch(FaceSpot),
    /// One hand goes to the front of the neck (`low`: to the suprasternal notch instead).
    TouchNeck {
        low: bool,
    },
    /// Both hands cover the face.
    CoverFace,
    /// Wrists cross to the opposite elbows.
    FoldArms,
    /// Both hands meet in front of the chest (`rub`: they keep rubbing).
    HandsTogether {
        rub: bool,
        high: bool,
    },
    /// Hands on the hips, mostly below the frame.
    Akimbo,
    /// One hand scratches the opposite upper arm.
    ScratchArm,
    /// One hand goes down to the leg, out of the frame.
    TouchLeg,
    /// Small fast hand movements on the desk (`both`: two hands).
    Fidget {
        both: bool,
    },
    /// Shoulders go up (`head_down`: the head sinks too, "turtle neck").
    Shrug {
        head_down: bool,
    },
    HeadShake,
    HeadNod,
    HeadBow,
    HeadUp,
    HeadTilt,
    /// The torso sways sideways.
    TorsoSway,
    /// The torso straightens up.
    SitUp,
    /// The torso leans towards the camera.
    LeanForward,
    /// Class 99: a small, unremarkable movement of one arm.
    Idle,
}

/// Whether a class is a bit more frequent in Lose videos, in Win videos, or neither.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Tilt {
    Lose,
    Win,
    None,
}

pub(crate) struct ClassInfo {
    pub id: u8,
    /// Relative frequency over the whole dataset (skewed on purpose, like the real one).
    pub weight: f64,
    pub motion: Motion,
    pub tilt: Tilt,
}

const fn c(id: u8, weight: f64, motion: Motion, tilt: Tilt) -> ClassInfo {
    ClassInfo {
        id,
        weight,
        motion,
        tilt,
    }
}

use FaceSpot as F;
use Motion as M;

/// Every class, 1..=31 then 99. Index = position in per-subject preference arrays.
pub(crate) const CLASSES: [ClassInfo; 32] = [
    c(1, 1.5, M::FoldArms, Tilt::Lose),
    c(2, 2.5, M::TorsoSway, Tilt::Win),
    c(3, 0.6, M::SitUp, Tilt::Win),
    c(4, 6.0, M::Touch(F::Eye), Tilt::Lose),
    c(5, 0.7, M::Shrug { head_down: true }, Tilt::None),
    c(6, 0.7, M::HeadBow, Tilt::Lose),
    c(7, 2.0, M::Touch(F::HairTop), Tilt::Lose),
    c(8, 4.0, M::TouchNeck { low: true }, Tilt::None),
    c(9, 1.2, M::Touch(F::Forehead), Tilt::Lose),
    c(10, 2.0, M::Touch(F::Cheek), Tilt::Lose),
    c(11, 3.0, M::CoverFace, Tilt::Lose),
    c(12, 2.0, M::TouchNeck { low: false }, Tilt::None),
    c(13, 1.2, M::Touch(F::HairSide), Tilt::None),
    c(
        14,
        0.4,
        M::HandsTogether {
            rub: false,
            high: true,
        },
        Tilt::None,
    ),
    c(15, 0.3, M::Akimbo, Tilt::Win),
    c(
        16,
        0.5,
        M::HandsTogether {
            rub: false,
            high: true,
        },
        Tilt::Win,
    ),
    c(17, 3.0, M::ScratchArm, Tilt::None),
    c(
        18,
        1.0,
        M::HandsTogether {
            rub: false,
            high: false,
        },
        Tilt::Lose,
    ),
    c(
        19,
        1.0,
        M::HandsTogether {
            rub: true,
            high: false,
        },
        Tilt::None,
    ),
    c(20, 8.0, M::Fidget { both: true }, Tilt::None),
    c(21, 2.0, M::Touch(F::Mouth), Tilt::Lose),
    c(22, 3.5, M::Shrug { head_down: false }, Tilt::Win),
    c(23, 0.6, M::TouchLeg, Tilt::None),
    c(24, 1.5, M::HeadShake, Tilt::None),
    c(25, 1.5, M::HeadUp, Tilt::Win),
    c(26, 2.5, M::HeadTilt, Tilt::None),
    c(27, 0.8, M::Touch(F::Ear), Tilt::Lose),
    c(28, 1.0, M::Touch(F::Chin), Tilt::Lose),
    c(29, 12.0, M::Fidget { both: false }, Tilt::None),
    c(30, 0.8, M::LeanForward, Tilt::Win),
    c(31, 10.0, M::HeadNod, Tilt::None),
    c(99, 14.0, M::Idle, Tilt::None),
];

/// How much a tilted class is favoured by its label (weak on purpose: the subject's own habits,
/// drawn with a much wider spread, dominate).
pub(crate) const TILT_FACTOR: f64 = 1.25;

/// The motion of a class id (class ids not in the table move like class 99).
pub(crate) fn motion_of(class: u8) -> Motion {
    CLASSES
        .iter()
        .find(|c| c.id == class)
        .map_or(Motion::Idle, |c| c.motion)
}
