//! `xp ingest crops`: person crops into `crops` (the bytes, stored once) and `frames` (which
//! frame shows which crop, and the box it came from).
//!
//! Three sources: frame images plus per-frame detections (YOLO text or Ultralytics JSON), a
//! video file decoded through ffmpeg plus detections, or ready-made crop images. Videos are
//! processed one at a time and crops are staged in bounded parts, so memory stays flat however
//! many frames there are.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use arrow::array::{ArrayRef, Float32Array, Int16Array, Int32Array, RecordBatch, StringArray};
use image::RgbImage;
use rayon::prelude::*;

use super::BadInput;
use super::boxes::{self, Detection, PickRule, PixelBox};
use super::crop_sink::{Crop, CropSink, crop_hash};
use super::images::{self, CropStyle};
use super::names::{digit_groups, has_extension, leading_id, sorted_entries, stem};
use super::video_decode::{self, VideoFrames};
use crate::store::{PartRef, Stager};

/// Frames decoded and cut at a time (in parallel): bounds the decoded images held in memory.
const FRAMES_IN_FLIGHT: usize = 16;

/// What the paths given to `xp ingest crops` hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CropFrom {
    /// Frame images or video files; crops are cut at the detected person box.
    Frames,
    /// Crop images that are ready to store as they are.
    Crops,
}

/// How crops are found and cut.
#[derive(Debug, Clone)]
pub struct CropOptions {
    pub from: CropFrom,
    /// Where the detection files are (default: beside the frames).
    pub boxes: Option<PathBuf>,
    /// The number in the first detection file's name (Ultralytics numbers video frames from 1).
    pub box_frame_base: i32,
    pub pick: PickRule,
    pub person_class: i64,
    pub min_confidence: f32,
    pub style: CropStyle,
    /// The video id, when the names do not carry it.
    pub video: Option<i32>,
}

impl Default for CropOptions {
    fn default() -> Self {
        CropOptions {
            from: CropFrom::Frames,
            boxes: None,
            box_frame_base: 0,
            pick: PickRule::Largest,
            person_class: 0,
            min_confidence: 0.0,
            style: CropStyle::default(),
            video: None,
        }
    }
}

/// One video's input.
#[derive(Debug)]
pub struct VideoInput {
    pub video_id: i32,
    pub source: Source,
}

#[derive(Debug)]
pub enum Source {
    /// Image files by frame number.
    Images(BTreeMap<i32, PathBuf>),
    VideoFile(PathBuf),
}

impl VideoInput {
    /// A file to name in errors about the whole video.
    pub fn first_path(&self) -> PathBuf {
        match &self.source {
            Source::Images(frames) => frames.values().next().cloned().unwrap_or_default(),
            Source::VideoFile(p) => p.clone(),
        }
    }

    pub fn frame_count_hint(&self) -> u64 {
        match &self.source {
            Source::Images(frames) => frames.len() as u64,
            Source::VideoFile(_) => 0,
        }
    }
}

fn is_image(path: &Path) -> bool {
    has_extension(path, &["jpg", "jpeg", "png"])
}

/// Finds the videos and frames under `paths`. Names: `<video>_<frame>.jpg` anywhere, or
/// `<video>/<frame>.jpg` (the folder names the video); video files `<video>.mp4`.
pub fn discover(paths: &[PathBuf], video: Option<i32>) -> Result<Vec<VideoInput>, BadInput> {
    let mut images: BTreeMap<i32, BTreeMap<i32, PathBuf>> = BTreeMap::new();
    let mut files: BTreeMap<i32, PathBuf> = BTreeMap::new();
    let mut add_image = |file: &Path, dir: &Path| -> Result<(), BadInput> {
        let groups = digit_groups(&stem(file));
        let dir_id = dir
            .file_name()
            .and_then(|n| leading_id(&n.to_string_lossy()));
        // Only a folder named by digits alone overrides the numbers in a file name.
        let numeric_dir = dir
            .file_name()
            .map(|n| n.to_string_lossy())
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| leading_id(&n));
        // A folder named by the video wins over digits in the file name (`298/cam2_0001.jpg`
        // is video 298); otherwise the name's first number is the video.
        let (id, frame) = match groups.as_slice() {
            [] => {
                return Err(BadInput::new(
                    file,
                    "cannot tell the frame number: name images <video>_<frame>.jpg, or \
                     <frame>.jpg inside a folder named by the video id",
                ));
            }
            [frame] => (video.or(dir_id), *frame),
            [first, .., frame] => (video.or(numeric_dir).or(i32::try_from(*first).ok()), *frame),
        };
        let Some(id) = id else {
            return Err(BadInput::new(
                file,
                "cannot tell the video id: put the frames in a folder named by the video id \
                 (e.g. 298/), name them <video>_<frame>.jpg, or pass --video",
            ));
        };
        let frame = super::names::plausible_frame(frame).map_err(|m| BadInput::new(file, m))?;
        if let Some(other) = images
            .entry(id)
            .or_default()
            .insert(frame, file.to_path_buf())
        {
            return Err(BadInput::new(
                file,
                format!(
                    "video {id} frame {frame} is also given as {}",
                    other.display()
                ),
            ));
        }
        Ok(())
    };
    let mut add_video_file = |file: &Path| -> Result<(), BadInput> {
        let id = video.or_else(|| leading_id(&stem(file))).ok_or_else(|| {
            BadInput::new(
                file,
                "cannot tell the video id: the file name must start with it (e.g. \
                 298.mp4), or pass --video",
            )
        })?;
        if let Some(other) = files.insert(id, file.to_path_buf()) {
            return Err(BadInput::new(
                file,
                format!("video {id} is also given as {}", other.display()),
            ));
        }
        Ok(())
    };
    for path in paths {
        if path.is_file() {
            if video_decode::is_video_file(path) {
                add_video_file(path)?;
            } else if is_image(path) {
                add_image(path, path.parent().unwrap_or(Path::new(".")))?;
            } else {
                return Err(BadInput::new(
                    path,
                    "not an image (.jpg, .png) or a video file",
                ));
            }
        } else if path.is_dir() {
            for entry in sorted_entries(path)? {
                if entry.is_dir() {
                    for file in sorted_entries(&entry)? {
                        if file.is_file() && is_image(&file) {
                            add_image(&file, &entry)?;
                        }
                    }
                } else if is_image(&entry) {
                    add_image(&entry, path)?;
                } else if video_decode::is_video_file(&entry) {
                    add_video_file(&entry)?;
                }
            }
        } else {
            return Err(BadInput::new(path, "no such file or folder"));
        }
    }
    let mut inputs = Vec::new();
    for (id, frames) in images {
        if let Some(file) = files.get(&id) {
            return Err(BadInput::new(
                file,
                format!("video {id} is given both as this file and as frame images"),
            ));
        }
        inputs.push(VideoInput {
            video_id: id,
            source: Source::Images(frames),
        });
    }
    for (id, file) in files {
        inputs.push(VideoInput {
            video_id: id,
            source: Source::VideoFile(file),
        });
    }
    inputs.sort_by_key(|v| v.video_id);
    if inputs.is_empty() {
        let shown = paths
            .first()
            .map(PathBuf::as_path)
            .unwrap_or(Path::new("."));
        return Err(BadInput::new(
            shown,
            "found no images (.jpg, .png) or video files",
        ));
    }
    Ok(inputs)
}

/// Finds each frame's detection file: `<boxes>/<video>/<frame>.txt|json`, or
/// `<boxes>/<video>_<frame>.txt|json` in a folder shared by several videos. A shared folder is
/// listed once per ingest, not once per video.
#[derive(Default)]
pub struct BoxesIndex {
    /// Shared folder -> (video, frame number as written, file) of its detection files.
    shared: HashMap<PathBuf, Vec<(i64, i64, PathBuf)>>,
    /// Videos that had at least one detection file.
    pub matched_videos: usize,
}

/// (numbers in the name, file) of the detection files in `dir`.
fn detection_files(dir: &Path) -> Result<Vec<(Vec<i64>, PathBuf)>, BadInput> {
    if !dir.is_dir() {
        return Err(BadInput::new(dir, "the detections folder does not exist"));
    }
    Ok(sorted_entries(dir)?
        .into_iter()
        .filter(|f| f.is_file() && has_extension(f, &["txt", "json"]))
        .map(|f| (digit_groups(&stem(&f)), f))
        .filter(|(g, _)| !g.is_empty())
        .collect())
}

impl BoxesIndex {
    /// Frame -> detection file for one video (frame numbers in names counted from `base`).
    fn for_video(
        &mut self,
        input: &VideoInput,
        boxes_root: Option<&Path>,
        base: i32,
    ) -> Result<HashMap<i32, PathBuf>, BadInput> {
        let root = match boxes_root {
            Some(r) => r.to_path_buf(),
            None => input
                .first_path()
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        };
        let per_video = root.join(input.video_id.to_string());
        // The video's own folder: `<boxes>/<video>/`, or (by default) the folder of its
        // frames when that folder is named by the video.
        let own = if per_video.is_dir() {
            Some(per_video)
        } else if boxes_root.is_none()
            && root
                .file_name()
                .and_then(|n| leading_id(&n.to_string_lossy()))
                == Some(input.video_id)
        {
            Some(root.clone())
        } else {
            None
        };
        let found: Vec<(i64, PathBuf)> = match own {
            Some(dir) => detection_files(&dir)?
                .into_iter()
                .map(|(g, f)| (*g.last().expect("non-empty"), f))
                .collect(),
            None => {
                if !self.shared.contains_key(&root) {
                    let listed = detection_files(&root)?
                        .into_iter()
                        .filter(|(g, _)| g.len() >= 2)
                        .map(|(g, f)| (g[0], *g.last().expect("non-empty"), f))
                        .collect();
                    self.shared.insert(root.clone(), listed);
                }
                self.shared[&root]
                    .iter()
                    .filter(|(v, _, _)| *v == i64::from(input.video_id))
                    .map(|(_, n, f)| (*n, f.clone()))
                    .collect()
            }
        };
        let mut index = HashMap::new();
        for (number, file) in found {
            let frame = i32::try_from(number - i64::from(base))
                .ok()
                .filter(|f| *f >= 0)
                .ok_or_else(|| {
                    BadInput::new(
                        &file,
                        format!(
                            "frame number {number} is out of range (frames count from \
                             --box-frame-base {base})"
                        ),
                    )
                })?;
            if let Some(other) = index.insert(frame, file.clone()) {
                return Err(BadInput::new(
                    &file,
                    format!(
                        "frame {frame} of video {} has two detection files (also {})",
                        input.video_id,
                        other.display()
                    ),
                ));
            }
        }
        if !index.is_empty() {
            self.matched_videos += 1;
        }
        if let Source::Images(frames) = &input.source
            && let Some((frame, file)) = index.iter().find(|(f, _)| !frames.contains_key(f))
        {
            return Err(BadInput::new(
                file,
                format!(
                    "detections for frame {frame} of video {}, which has no frame image \
                     (wrong folder, or files numbered from 1: pass --box-frame-base 1)",
                    input.video_id
                ),
            ));
        }
        Ok(index)
    }
}

/// One frame's row of the `frames` table, with its crop while that is on its way to the sink.
pub struct FrameRow {
    pub frame: i32,
    pub crop: Option<Crop>,
    pub crop_hash: Option<String>,
    pub pixel_box: Option<PixelBox>,
    pub confidence: Option<f32>,
    pub detections: Option<i16>,
    pub frame_size: Option<(u32, u32)>,
    pub source_hash: String,
}

fn read(path: &Path) -> Result<Vec<u8>, BadInput> {
    std::fs::read(path).map_err(|e| BadInput::new(path, format!("cannot read: {e}")))
}

fn parse_detections(path: &Path, bytes: &[u8]) -> Result<Vec<Detection>, BadInput> {
    if has_extension(path, &["json"]) {
        boxes::parse_ultralytics_json(path, bytes)
    } else {
        boxes::parse_yolo(path, bytes)
    }
}

/// Cuts the person out of one decoded frame.
fn cut(
    frame: i32,
    rgb: &RgbImage,
    boxes_file: Option<&Path>,
    mut hasher: blake3::Hasher,
    options: &CropOptions,
) -> Result<FrameRow, BadInput> {
    let (w, h) = (rgb.width(), rgb.height());
    let mut detections = Vec::new();
    if let Some(path) = boxes_file {
        let bytes = read(path)?;
        hasher.update(&bytes);
        detections = parse_detections(path, &bytes)?;
        // Every box must lie inside the frame: one that does not means the detections belong
        // to another video or another resolution.
        for d in &detections {
            d.to_pixels(w, h)
                .map_err(|m| BadInput::new(path, m).line(d.line))?;
        }
    }
    let people: Vec<Detection> = detections
        .into_iter()
        .filter(|d| d.class == options.person_class)
        .filter(|d| d.confidence.is_none_or(|c| c >= options.min_confidence))
        .collect();
    let picked = boxes::pick(&people, options.person_class, options.pick, w, h);
    let mut row = FrameRow {
        frame,
        crop: None,
        crop_hash: None,
        pixel_box: None,
        confidence: None,
        detections: Some(people.len().min(i16::MAX as usize) as i16),
        frame_size: Some((w, h)),
        source_hash: hasher.finalize().to_hex().to_string(),
    };
    if let Some(d) = picked {
        let b = d.to_pixels(w, h).expect("checked above");
        let b = images::with_margin(b, options.style.margin, w, h);
        let (bytes, cw, ch) = images::crop_jpeg(rgb, b, &options.style);
        let hash = crop_hash(&bytes);
        row.crop_hash = Some(hash.clone());
        row.crop = Some(Crop {
            hash,
            format: "jpeg",
            width: cw,
            height: ch,
            bytes,
        });
        row.pixel_box = Some(b);
        row.confidence = d.confidence;
    }
    Ok(row)
}

fn image_frame(
    frame: i32,
    path: &Path,
    boxes_file: Option<&Path>,
    options: &CropOptions,
) -> Result<FrameRow, BadInput> {
    let bytes = read(path)?;
    let mut hasher = blake3::Hasher::new();
    hasher.update(&bytes);
    let rgb = images::decode(path, &bytes)?.to_rgb8();
    drop(bytes);
    cut(frame, &rgb, boxes_file, hasher, options)
}

fn ready_crop(frame: i32, path: &Path) -> Result<FrameRow, BadInput> {
    let bytes = read(path)?;
    let img = images::decode(path, &bytes)?;
    let format = images::format_name(&bytes).expect("decode checked the format");
    let hash = crop_hash(&bytes);
    Ok(FrameRow {
        frame,
        crop: Some(Crop {
            hash: hash.clone(),
            format,
            width: img.width(),
            height: img.height(),
            bytes,
        }),
        crop_hash: Some(hash.clone()),
        pixel_box: None,
        confidence: None,
        detections: None,
        frame_size: None,
        source_hash: hash,
    })
}

/// Reads, cuts and hands over the crops of one video; returns its `frames` rows in frame order.
/// `tick` is called once per frame.
pub fn process_video(
    input: &VideoInput,
    options: &CropOptions,
    boxes: &mut BoxesIndex,
    stager: &mut Stager,
    sink: &mut CropSink,
    tick: &(dyn Fn() + Sync),
) -> Result<Vec<FrameRow>> {
    let mut rows = Vec::new();
    let mut take = |mut batch: Vec<Result<FrameRow, BadInput>>,
                    stager: &mut Stager,
                    sink: &mut CropSink|
     -> Result<()> {
        for row in batch.drain(..) {
            let mut row = row?;
            if let Some(crop) = row.crop.take() {
                sink.add(stager, crop)?;
            }
            rows.push(row);
        }
        Ok(())
    };
    let index = match options.from {
        CropFrom::Frames => {
            boxes.for_video(input, options.boxes.as_deref(), options.box_frame_base)?
        }
        CropFrom::Crops => HashMap::new(),
    };
    match &input.source {
        Source::Images(frames) => {
            let frames: Vec<(&i32, &PathBuf)> = frames.iter().collect();
            for chunk in frames.chunks(FRAMES_IN_FLIGHT) {
                let out: Vec<_> = chunk
                    .par_iter()
                    .map(|(frame, path)| {
                        let row = match options.from {
                            CropFrom::Frames => image_frame(
                                **frame,
                                path,
                                index.get(frame).map(PathBuf::as_path),
                                options,
                            ),
                            CropFrom::Crops => ready_crop(**frame, path),
                        };
                        tick();
                        row
                    })
                    .collect();
                take(out, stager, sink)?;
            }
        }
        Source::VideoFile(path) => {
            if options.from == CropFrom::Crops {
                return Err(BadInput::new(
                    path,
                    "--from crops takes crop images, not a video file",
                )
                .into());
            }
            let mut decoder = VideoFrames::open(path)?;
            let mut frame = 0i32;
            loop {
                let mut decoded = Vec::new();
                while decoded.len() < FRAMES_IN_FLIGHT {
                    match decoder.next_frame()? {
                        Some(rgb) => {
                            decoded.push((frame, rgb));
                            frame += 1;
                        }
                        None => break,
                    }
                }
                if decoded.is_empty() {
                    break;
                }
                let out: Vec<_> = decoded
                    .par_iter()
                    .map(|(frame, rgb)| {
                        let mut hasher = blake3::Hasher::new();
                        hasher.update(rgb.as_raw());
                        let row = cut(
                            *frame,
                            rgb,
                            index.get(frame).map(PathBuf::as_path),
                            hasher,
                            options,
                        );
                        tick();
                        row
                    })
                    .collect();
                take(out, stager, sink)?;
            }
            if let Some(extra) = index.keys().filter(|&&f| f >= frame).min() {
                return Err(BadInput::new(
                    &index[extra],
                    format!(
                        "detections for frame {extra}, but the video has {frame} frames \
                         (if the files are numbered from 1, pass --box-frame-base 1)"
                    ),
                )
                .into());
            }
        }
    }
    Ok(rows)
}

/// The `frames` rows of one video.
pub fn frames_batch(video_id: i32, rows: &[FrameRow]) -> Result<RecordBatch> {
    let schema = crate::schema::table("frames").schema.clone();
    let box_col = |f: fn(&PixelBox) -> u32| -> ArrayRef {
        Arc::new(Int32Array::from_iter(
            rows.iter()
                .map(|r| r.pixel_box.as_ref().map(|b| f(b) as i32)),
        ))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(vec![video_id; rows.len()])),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.frame))),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.crop_hash.as_deref()),
        )),
        box_col(|b| b.x),
        box_col(|b| b.y),
        box_col(|b| b.w),
        box_col(|b| b.h),
        Arc::new(Float32Array::from_iter(rows.iter().map(|r| r.confidence))),
        Arc::new(Int16Array::from_iter(rows.iter().map(|r| r.detections))),
        Arc::new(Int32Array::from_iter(
            rows.iter().map(|r| r.frame_size.map(|s| s.0 as i32)),
        )),
        Arc::new(Int32Array::from_iter(
            rows.iter().map(|r| r.frame_size.map(|s| s.1 as i32)),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.source_hash.as_str()),
        )),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// Stages one video's `frames` part.
pub fn stage_frames(stager: &mut Stager, video_id: i32, rows: &[FrameRow]) -> Result<PartRef> {
    let batch = frames_batch(video_id, rows)?;
    stager.stage(super::keypoints::part_key(video_id), &batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discover_reads_both_naming_schemes_and_refuses_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("12");
        std::fs::create_dir(&a).unwrap();
        std::fs::write(a.join("000001.jpg"), b"x").unwrap();
        std::fs::write(a.join("000002.jpg"), b"x").unwrap();
        std::fs::write(dir.path().join("13_000005.png"), b"x").unwrap();
        let found = discover(&[dir.path().to_path_buf()], None).unwrap();
        let summary: Vec<(i32, Vec<i32>)> = found
            .iter()
            .map(|v| match &v.source {
                Source::Images(f) => (v.video_id, f.keys().copied().collect()),
                Source::VideoFile(_) => unreachable!(),
            })
            .collect();
        assert_eq!(summary, vec![(12, vec![1, 2]), (13, vec![5])]);

        // A folder named by the video wins over other numbers in the name.
        let cam = tempfile::tempdir().unwrap();
        std::fs::create_dir(cam.path().join("298")).unwrap();
        std::fs::write(cam.path().join("298/cam2_000123.jpg"), b"x").unwrap();
        let found = discover(&[cam.path().to_path_buf()], None).unwrap();
        assert_eq!(found[0].video_id, 298);

        std::fs::write(dir.path().join("12_000001.jpg"), b"x").unwrap();
        let e = discover(&[dir.path().to_path_buf()], None).unwrap_err();
        assert!(e.to_string().contains("also given"), "{e}");
    }
}
