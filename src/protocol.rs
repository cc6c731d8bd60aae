//! The evaluation protocols of iMiGUE that ship with xp.
//!
//! Both lists are facts of the dataset (see the paper summary): they are data, not
//! configuration, so they live in code and are exposed to SQL as the `protocols` table and the
//! `splits` view.

/// How a protocol assigns videos to splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitBy {
    /// The lists hold video ids.
    Video,
    /// The lists hold subject (player) ids; a video follows its subject.
    Subject,
}

/// One named protocol: which ids are train and which are test.
#[derive(Debug)]
pub struct Protocol {
    pub name: &'static str,
    pub split_by: SplitBy,
    pub train: &'static [i32],
    pub test: &'static [i32],
    /// What this protocol is for, shown by `xp sql` users in the `protocols` table.
    pub meaning: &'static str,
}

/// The official emotion (win/lose) protocol: 102 train and 100 test videos, balanced.
/// The other 157 videos have no role; all of them are Win.
pub const IMIGUE_EMOTION: Protocol = Protocol {
    name: "imigue-emotion",
    split_by: SplitBy::Video,
    train: &[
        1, 7, 8, 11, 26, 27, 46, 47, 48, 53, 55, 57, 63, 66, 67, 74, 77, 84, 85, 86, 91, 96, 102,
        103, 104, 105, 106, 108, 109, 112, 114, 117, 124, 132, 134, 140, 148, 157, 161, 162, 163,
        164, 167, 169, 170, 172, 176, 186, 196, 216, 233, 236, 237, 239, 240, 241, 242, 243, 249,
        252, 266, 290, 297, 300, 306, 310, 314, 318, 319, 320, 324, 334, 339, 359, 360, 365, 369,
        377, 381, 385, 392, 402, 407, 410, 411, 413, 414, 415, 420, 429, 433, 435, 436, 440, 441,
        445, 448, 449, 450, 451, 452, 453,
    ],
    test: &[
        9, 10, 12, 16, 28, 35, 43, 49, 50, 51, 52, 54, 56, 60, 71, 72, 83, 89, 95, 100, 107, 110,
        111, 121, 131, 136, 144, 145, 165, 166, 168, 171, 174, 179, 185, 191, 193, 212, 220, 223,
        230, 231, 232, 234, 235, 238, 244, 246, 254, 258, 262, 263, 268, 270, 276, 280, 282, 303,
        304, 311, 312, 313, 315, 316, 317, 322, 323, 325, 327, 328, 329, 333, 337, 341, 343, 344,
        363, 374, 400, 401, 403, 404, 405, 406, 408, 416, 417, 419, 421, 428, 430, 431, 437, 438,
        439, 442, 443, 444, 446, 447,
    ],
    meaning: "official emotion protocol: 102 train / 100 test videos, balanced win/lose; \
              other videos are 'pool' (no gold role, natural pseudo-label pool)",
};

/// The cross-subject micro-gesture protocol: 37 train and 35 test players.
pub const IMIGUE_CROSS_SUBJECT: Protocol = Protocol {
    name: "imigue-cross-subject",
    split_by: SplitBy::Subject,
    train: &[
        2, 4, 5, 6, 9, 10, 12, 13, 14, 15, 17, 18, 20, 21, 22, 23, 25, 28, 29, 30, 31, 35, 36, 38,
        39, 41, 42, 43, 44, 46, 47, 48, 52, 53, 59, 61, 62,
    ],
    test: &[
        1, 3, 7, 8, 11, 16, 19, 24, 26, 27, 32, 33, 34, 37, 40, 45, 49, 50, 51, 54, 55, 56, 57, 58,
        60, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72,
    ],
    meaning: "cross-subject micro-gesture protocol: 37 train / 35 test players",
};

/// Every protocol xp knows, in a stable order.
pub const ALL: &[&Protocol] = &[&IMIGUE_EMOTION, &IMIGUE_CROSS_SUBJECT];

/// The split name given to ids that a protocol does not list.
pub const POOL: &str = "pool";

impl Protocol {
    /// The split of one id (a video id or a subject id, per `split_by`).
    pub fn split_of(&self, id: i32) -> &'static str {
        if self.train.contains(&id) {
            "train"
        } else if self.test.contains(&id) {
            "test"
        } else {
            POOL
        }
    }
}

/// Looks a protocol up by name.
pub fn by_name(name: &str) -> Option<&'static Protocol> {
    ALL.iter().copied().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn emotion_protocol_has_the_published_sizes_and_no_overlap() {
        let train: HashSet<_> = IMIGUE_EMOTION.train.iter().collect();
        let test: HashSet<_> = IMIGUE_EMOTION.test.iter().collect();
        assert_eq!(train.len(), 102);
        assert_eq!(test.len(), 100);
        assert!(train.is_disjoint(&test));
        assert!(
            train
                .iter()
                .chain(test.iter())
                .all(|&&id| (1..=453).contains(&id))
        );
    }

    #[test]
    fn cross_subject_protocol_covers_72_players_once() {
        let train: HashSet<_> = IMIGUE_CROSS_SUBJECT.train.iter().collect();
        let test: HashSet<_> = IMIGUE_CROSS_SUBJECT.test.iter().collect();
        assert_eq!(train.len(), 37);
        assert_eq!(test.len(), 35);
        assert!(train.is_disjoint(&test));
        let all: HashSet<i32> = train.union(&test).map(|&&x| x).collect();
        assert_eq!(all, (1..=72).collect());
    }

    #[test]
    fn split_of_unlisted_id_is_pool() {
        assert_eq!(IMIGUE_EMOTION.split_of(298), POOL);
        assert_eq!(IMIGUE_EMOTION.split_of(7), "train");
        assert_eq!(IMIGUE_EMOTION.split_of(9), "test");
        assert_eq!(
            by_name("imigue-cross-subject").unwrap().split_of(22),
            "train"
        );
    }
}
