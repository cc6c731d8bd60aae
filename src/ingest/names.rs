//! How file and folder names carry video ids and frame numbers (`298.npy`, `298/000123.jpg`,
//! `298_000000000123_keypoints.json`), and listing folders in a stable order.

use std::path::{Path, PathBuf};

use super::BadInput;

/// The largest frame number xp accepts: 10 hours at 60 frames per second. An interview is
/// hours long at most, so a larger number is a misnamed file or a corrupt table, and trusting
/// it would make training allocate a frame array of that length.
pub const MAX_FRAME: i64 = 10 * 3600 * 60;

/// A frame number as stored, or why it is not plausible.
pub fn plausible_frame(frame: i64) -> Result<i32, String> {
    if frame < 0 {
        return Err(format!(
            "frame number {frame} is negative (frames count from 0)"
        ));
    }
    if frame > MAX_FRAME {
        return Err(format!(
            "frame number {frame} is implausible: an interview is hours long at most, and xp \
             accepts frame numbers up to {MAX_FRAME} (10 hours at 60 fps)"
        ));
    }
    Ok(frame as i32)
}

/// The video id a name starts with (`298.srt`, `298_interviewer.srt`); None for 0 or no digits.
pub fn leading_id(name: &str) -> Option<i32> {
    let digits: String = name.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok().filter(|&v| v > 0)
}

/// The runs of ASCII digits in a name, as numbers (`298_000000000123` -> [298, 123]).
pub fn digit_groups(name: &str) -> Vec<i64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty() && g.len() <= 18)
        .filter_map(|g| g.parse().ok())
        .collect()
}

/// The extension, lower case (empty when there is none).
pub fn extension(path: &Path) -> String {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

pub fn has_extension(path: &Path, exts: &[&str]) -> bool {
    exts.contains(&extension(path).as_str())
}

/// The file name without its extension.
pub fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A folder's entries, sorted, so every ingest sees files in the same order.
pub fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, BadInput> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| BadInput::new(dir, format!("cannot list the folder: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_give_video_and_frame() {
        assert_eq!(digit_groups("298_000000000123"), vec![298, 123]);
        assert_eq!(digit_groups("frame_0042"), vec![42]);
        assert!(digit_groups("classes").is_empty());
        assert_eq!(leading_id("298.mp4"), Some(298));
        assert_eq!(leading_id("0.mp4"), None);
        assert_eq!(leading_id("clip.mp4"), None);
        assert!(has_extension(Path::new("a/B.JPG"), &["jpg"]));
    }

    #[test]
    fn frame_numbers_are_bounded() {
        assert_eq!(plausible_frame(0), Ok(0));
        assert_eq!(plausible_frame(2_160_000), Ok(2_160_000));
        assert!(
            plausible_frame(2_160_001)
                .unwrap_err()
                .contains("implausible")
        );
        assert!(plausible_frame(i64::from(i32::MAX)).is_err());
        assert!(plausible_frame(-1).unwrap_err().contains("negative"));
    }
}
