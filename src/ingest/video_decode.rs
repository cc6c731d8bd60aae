//! Video files, decoded through the `ffmpeg` command (or `XP_FFMPEG`) when it is installed: frames stream out as
//! raw RGB one at a time, so a two-hour interview never sits in memory.

use std::io::{BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use image::RgbImage;

use super::BadInput;

/// File extensions xp treats as video.
pub const VIDEO_EXTENSIONS: &[&str] = &["mp4", "mkv", "avi", "mov", "webm", "m4v", "mpg", "mpeg"];

pub fn is_video_file(path: &Path) -> bool {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.as_str()))
}

const NO_FFMPEG: &str = "decoding a video file needs the `ffmpeg` command, and it is not \
    installed. Install ffmpeg (e.g. `apt install ffmpeg`, or point XP_FFMPEG at a binary), or \
    extract the frames yourself (`ffmpeg -i 298.mp4 -start_number 0 frames/298/%06d.png`) and \
    ingest the folder of images";

/// The ffmpeg command: `XP_FFMPEG` when set, else `ffmpeg` from the PATH.
fn ffmpeg() -> Command {
    Command::new(std::env::var_os("XP_FFMPEG").unwrap_or_else(|| "ffmpeg".into()))
}

fn run_error(path: &Path, e: std::io::Error) -> BadInput {
    match e.kind() {
        ErrorKind::NotFound => BadInput::new(path, NO_FFMPEG),
        _ => BadInput::new(path, format!("cannot run ffmpeg: {e}")),
    }
}

/// A running decoder: `next_frame` yields frames in order until the video ends.
pub struct VideoFrames {
    path: PathBuf,
    child: Child,
    stdout: BufReader<ChildStdout>,
    /// ffmpeg's error messages, collected by a thread.
    errors: Option<std::thread::JoinHandle<String>>,
    pub width: u32,
    pub height: u32,
}

/// The frame size, from the first frame decoded as PNG (needs only ffmpeg, not ffprobe).
fn probe_size(path: &Path) -> Result<(u32, u32), BadInput> {
    let out = ffmpeg()
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-frames:v", "1", "-f", "image2pipe", "-c:v", "png", "-"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| run_error(path, e))?;
    match image::load_from_memory(&out.stdout) {
        Ok(img) if out.status.success() => Ok((img.width(), img.height())),
        _ => Err(BadInput::new(
            path,
            format!(
                "ffmpeg found no decodable video stream: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        )),
    }
}

impl VideoFrames {
    pub fn open(path: &Path) -> Result<VideoFrames, BadInput> {
        let (width, height) = probe_size(path)?;
        let mut child = ffmpeg()
            // -xerror: a damaged frame is an error, not a silently concealed picture.
            .args(["-v", "error", "-xerror", "-nostdin", "-i"])
            .arg(path)
            .args([
                "-f",
                "rawvideo",
                "-pix_fmt",
                "rgb24",
                "-fps_mode",
                "passthrough",
                "-",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| run_error(path, e))?;
        let stdout = BufReader::with_capacity(1 << 20, child.stdout.take().expect("piped"));
        // Read ffmpeg's messages as they come: a full stderr pipe would stall the decoder.
        let mut stderr = child.stderr.take().expect("piped");
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = (&mut stderr).take(1 << 16).read_to_string(&mut text);
            let _ = std::io::copy(&mut stderr, &mut std::io::sink());
            text
        });
        Ok(VideoFrames {
            path: path.to_path_buf(),
            child,
            stdout,
            errors: Some(errors),
            width,
            height,
        })
    }

    /// The next frame, or None at the end of the video.
    pub fn next_frame(&mut self) -> Result<Option<RgbImage>, BadInput> {
        let len = self.width as usize * self.height as usize * 3;
        let mut buf = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            match self.stdout.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(BadInput::new(&self.path, format!("ffmpeg: {e}"))),
            }
        }
        if filled == 0 {
            self.finish()?;
            return Ok(None);
        }
        if filled < len {
            return Err(BadInput::new(
                &self.path,
                "ffmpeg stopped in the middle of a frame (truncated or corrupt video)",
            ));
        }
        Ok(Some(
            RgbImage::from_raw(self.width, self.height, buf).expect("buffer has the frame size"),
        ))
    }

    fn finish(&mut self) -> Result<(), BadInput> {
        let status = self
            .child
            .wait()
            .map_err(|e| BadInput::new(&self.path, format!("ffmpeg: {e}")))?;
        if status.success() {
            return Ok(());
        }
        let err = self
            .errors
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        Err(BadInput::new(
            &self.path,
            format!("ffmpeg could not decode the video: {}", err.trim()),
        ))
    }
}

impl Drop for VideoFrames {
    fn drop(&mut self) {
        // An ingest that fails part-way must not leave a decoder running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
