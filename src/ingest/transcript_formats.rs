//! Interview transcripts: plain text, Whisper / WhisperX JSON, SubRip (.srt) and WebVTT (.vtt).
//!
//! Every format becomes the same list of [`Segment`]s. Refusals name the file, the line (or, for
//! JSON, the field path such as `segments[3].end`) and say what xp accepts, because the person
//! reading them is a researcher with a transcript from some tool, not the author of the parser.
//!
//! Times in SRT and VTT are whole milliseconds; parsers turn them into seconds as
//! `ms as f64 / 1000.0`, and the writers round seconds to whole milliseconds, so segments whose
//! times are whole milliseconds survive a write and parse bit for bit.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::BadInput;

/// One stretch of speech.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Seconds from the start of the video; None where the source has no times (plain text).
    pub start_s: Option<f64>,
    pub end_s: Option<f64>,
    pub speaker: Option<String>,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TranscriptFormat {
    Text,
    Json,
    Srt,
    Vtt,
}

/// By extension (case-insensitive): .txt .json .srt .vtt; None otherwise.
pub fn format_of(path: &Path) -> Option<TranscriptFormat> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "txt" => Some(TranscriptFormat::Text),
        "json" => Some(TranscriptFormat::Json),
        "srt" => Some(TranscriptFormat::Srt),
        "vtt" => Some(TranscriptFormat::Vtt),
        _ => None,
    }
}

/// Parses a whole transcript file already read into memory. `path` is only for error messages.
pub fn parse(
    path: &Path,
    format: TranscriptFormat,
    bytes: &[u8],
) -> Result<Vec<Segment>, BadInput> {
    let text = decode(path, bytes)?;
    match format {
        TranscriptFormat::Text => Ok(parse_text(text)),
        TranscriptFormat::Json => parse_json(path, text),
        TranscriptFormat::Srt => parse_srt(path, text),
        TranscriptFormat::Vtt => parse_vtt(path, text),
    }
}

/// Checks UTF-8 up front so that every format reports an encoding problem the same way, with
/// the line and byte to look at; drops a leading BOM, which Windows editors like to add.
fn decode<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str, BadInput> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.strip_prefix('\u{feff}').unwrap_or(s)),
        Err(e) => {
            let at = e.valid_up_to();
            let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() as u64 + 1;
            Err(BadInput::new(
                path,
                format!(
                    "invalid UTF-8 at byte {at}; transcripts must be UTF-8 (re-save the file \
                     as UTF-8)"
                ),
            )
            .line(line))
        }
    }
}

/// Lines with their 1-based numbers, without `\n` or `\r\n`.
fn lines(text: &str) -> impl Iterator<Item = (u64, &str)> {
    text.split('\n')
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.strip_suffix('\r').unwrap_or(l)))
}

/// A whitespace-only line separates cues like an empty one: editors leave stray spaces.
fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// Runs of non-blank lines: the cues (and header, NOTE, ... blocks) of SRT and VTT.
fn blocks(text: &str) -> Vec<Vec<(u64, &str)>> {
    let mut out: Vec<Vec<(u64, &str)>> = Vec::new();
    let mut current = Vec::new();
    for (n, line) in lines(text) {
        if is_blank(line) {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
        } else {
            current.push((n, line));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// A line for an error message; long garbage lines are cut so the message stays readable.
fn shown(line: &str) -> String {
    const MAX: usize = 60;
    if line.chars().count() <= MAX {
        line.to_string()
    } else {
        let cut: String = line.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

// ---------------------------------------------------------------------------------------------
// Plain text

/// Every non-blank line is a segment; a `Name: ` label at its start is the speaker.
fn parse_text(text: &str) -> Vec<Segment> {
    lines(text)
        .filter(|(_, line)| !is_blank(line))
        .map(|(_, line)| {
            let (speaker, text) = split_speaker(line);
            Segment {
                start_s: None,
                end_s: None,
                speaker,
                text,
            }
        })
        .collect()
}

fn split_speaker(line: &str) -> (Option<String>, String) {
    if let Some((label, rest)) = line.split_once(':')
        && is_speaker_label(label)
    {
        // Only the one conventional space goes: further spacing is the transcriber's.
        let rest = rest.strip_prefix(' ').unwrap_or(rest);
        // `Q : text` names the same speaker as `Q: text`.
        return (Some(label.trim_end().to_string()), rest.to_string());
    }
    (None, line.to_string())
}

/// `Interviewer`, `Q`, `SPEAKER_01`, `Novak Djokovic`: short, starting with a letter, so that
/// times (`10:30`) and sentences with a colon late in them stay text.
fn is_speaker_label(label: &str) -> bool {
    let mut chars = label.chars();
    (1..=40).contains(&label.chars().count())
        && chars.next().is_some_and(char::is_alphabetic)
        && chars.all(|c| c.is_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-'))
}

// ---------------------------------------------------------------------------------------------
// JSON (Whisper / WhisperX)

const JSON_SHAPE: &str = "a .json transcript must be an array of segments, or an object with \
                          a `segments` array (Whisper / WhisperX output), each segment with \
                          `text` and optional `start`, `end` (seconds) and `speaker`";

fn parse_json(path: &Path, text: &str) -> Result<Vec<Segment>, BadInput> {
    let root: Value = serde_json::from_str(text).map_err(|e| {
        let err = BadInput::new(path, format!("malformed JSON ({e}); {JSON_SHAPE}"));
        if e.line() > 0 {
            err.line(e.line() as u64)
        } else {
            err
        }
    })?;
    let (items, prefix) = match &root {
        Value::Array(items) => (items, ""),
        Value::Object(map) => match map.get("segments") {
            Some(Value::Array(items)) => (items, "segments"),
            Some(other) => {
                return Err(BadInput::new(
                    path,
                    format!("must be an array of segments, got {}", kind(other)),
                )
                .field("segments"));
            }
            None => {
                return Err(BadInput::new(
                    path,
                    format!("the top-level object has no `segments` key; {JSON_SHAPE}"),
                ));
            }
        },
        other => {
            return Err(BadInput::new(
                path,
                format!("the top level is {}; {JSON_SHAPE}", kind(other)),
            ));
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| json_segment(path, &format!("{prefix}[{i}]"), item))
        .collect()
}

fn json_segment(path: &Path, at: &str, item: &Value) -> Result<Segment, BadInput> {
    let Value::Object(map) = item else {
        return Err(BadInput::new(
            path,
            format!(
                "must be an object with `text` and optional `start`, `end`, `speaker`, got {}",
                kind(item)
            ),
        )
        .field(at));
    };
    let start_s = json_seconds(path, at, "start", map.get("start"))?;
    let end_s = json_seconds(path, at, "end", map.get("end"))?;
    if let (Some(start), Some(end)) = (start_s, end_s)
        && end < start
    {
        return Err(BadInput::new(
            path,
            format!(
                "ends at {end} s, before its start at {start} s; a segment must end at or after \
                 its start"
            ),
        )
        .field(format!("{at}.end")));
    }
    let speaker = match map.get("speaker") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(BadInput::new(
                path,
                format!(
                    "must be a string (the speaker's name or label) or null, got {}",
                    kind(other)
                ),
            )
            .field(format!("{at}.speaker")));
        }
    };
    let text = match map.get("text") {
        // Kept exactly: Whisper's leading space is the tokenizer's, not ours to judge.
        Some(Value::String(s)) => s.clone(),
        None => {
            return Err(
                BadInput::new(path, "missing: every segment needs its `text` (a string)")
                    .field(format!("{at}.text")),
            );
        }
        Some(other) => {
            return Err(
                BadInput::new(path, format!("must be a string, got {}", kind(other)))
                    .field(format!("{at}.text")),
            );
        }
    };
    Ok(Segment {
        start_s,
        end_s,
        speaker,
        text,
    })
}

/// An optional time in seconds; null counts as absent (WhisperX writes null for unaligned words).
fn json_seconds(
    path: &Path,
    at: &str,
    key: &str,
    value: Option<&Value>,
) -> Result<Option<f64>, BadInput> {
    let refuse = |message: String| Err(BadInput::new(path, message).field(format!("{at}.{key}")));
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(s) if s.is_finite() && s >= 0.0 => Ok(Some(s)),
            _ => refuse(format!(
                "must be a time in seconds, finite and >= 0, got {n}"
            )),
        },
        Some(other) => refuse(format!(
            "must be a number of seconds (e.g. 12.5), got {}",
            kind(other)
        )),
    }
}

/// What a JSON value is, for messages.
fn kind(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string \"{}\"", shown(s)),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// SRT and VTT times

#[derive(Clone, Copy)]
enum Cues {
    Srt,
    Vtt,
}

impl Cues {
    fn expected(self) -> &'static str {
        match self {
            Cues::Srt => {
                "`HH:MM:SS,mmm --> HH:MM:SS,mmm` (xp also accepts `.` before the milliseconds \
                 and 1 to 3 fraction digits)"
            }
            Cues::Vtt => {
                "`HH:MM:SS.mmm --> HH:MM:SS.mmm` or `MM:SS.mmm --> MM:SS.mmm`, optionally \
                 followed by cue settings"
            }
        }
    }
}

/// `start --> end [anything]`, in seconds. What follows the end time (VTT cue settings, the
/// `X1:..` box of some SRT writers) does not concern a transcript and is ignored.
fn parse_time_line(path: &Path, n: u64, line: &str, cues: Cues) -> Result<(f64, f64), BadInput> {
    let Some((left, right)) = line.split_once("-->") else {
        return Err(BadInput::new(
            path,
            format!(
                "malformed time line `{}`: expected {}",
                shown(line),
                cues.expected()
            ),
        )
        .line(n));
    };
    let start_txt = left.trim();
    let end_txt = right.split_whitespace().next().unwrap_or("");
    let time = |txt: &str, field: &str| {
        parse_timestamp(txt).map_err(|why| {
            BadInput::new(
                path,
                format!(
                    "malformed {field} time `{}` in time line `{}`: {why}; expected {}",
                    shown(txt),
                    shown(line),
                    cues.expected()
                ),
            )
            .line(n)
            .field(field)
        })
    };
    let start = time(start_txt, "start")?;
    let end = time(end_txt, "end")?;
    if end < start {
        return Err(BadInput::new(
            path,
            format!(
                "the cue ends at {end_txt}, before its start at {start_txt}; a cue must end at \
                 or after its start"
            ),
        )
        .line(n)
        .field("end"));
    }
    Ok((ms_to_s(start), ms_to_s(end)))
}

/// `[H...:]MM:SS[,.]f` with 1 to 3 fraction digits, in whole milliseconds.
fn parse_timestamp(s: &str) -> Result<u64, String> {
    if s.is_empty() {
        return Err("the time is missing".into());
    }
    let Some(dot) = s.rfind([',', '.']) else {
        return Err("no milliseconds (write e.g. 00:01:02,500)".into());
    };
    let (clock, frac) = (&s[..dot], &s[dot + 1..]);
    if !(1..=3).contains(&frac.len()) || !all_digits(frac) {
        return Err("the fraction of a second must be 1 to 3 digits".into());
    }
    // "5" is half a second: scale to milliseconds by the missing digits.
    let frac_ms =
        frac.parse::<u64>().map_err(|e| e.to_string())? * 10u64.pow(3 - frac.len() as u32);
    let parts: Vec<&str> = clock.split(':').collect();
    let (hours, minutes, seconds) = match parts.as_slice() {
        [h, m, s] => (*h, *m, *s),
        [m, s] => ("0", *m, *s),
        _ => return Err("expected hours, minutes and seconds separated by `:`".into()),
    };
    if !all_digits(hours) {
        return Err("the hours must be digits".into());
    }
    for (name, part) in [("minutes", minutes), ("seconds", seconds)] {
        if part.len() != 2 || !all_digits(part) {
            return Err(format!("the {name} must be two digits"));
        }
    }
    let minutes: u64 = minutes.parse().map_err(|_| "bad minutes".to_string())?;
    let seconds: u64 = seconds.parse().map_err(|_| "bad seconds".to_string())?;
    if minutes >= 60 || seconds >= 60 {
        return Err("minutes and seconds must be 00 to 59".into());
    }
    let too_large = || "the time is too large".to_string();
    let hours: u64 = hours.parse().map_err(|_| too_large())?;
    let ms = hours
        .checked_mul(3_600_000)
        .and_then(|ms| ms.checked_add(minutes * 60_000 + seconds * 1000 + frac_ms))
        .ok_or_else(too_large)?;
    // Beyond 2^53 milliseconds seconds would no longer be exact.
    if ms > 1 << 53 {
        return Err(too_large());
    }
    Ok(ms)
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn ms_to_s(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// Seconds to whole milliseconds for the writers; absent, negative or non-finite times are 0.
fn s_to_ms(s: Option<f64>) -> u64 {
    match s {
        Some(s) if s.is_finite() && s > 0.0 => (s * 1000.0).round() as u64,
        _ => 0,
    }
}

fn clock(ms: u64, sep: char) -> String {
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, f) = (rest / 1000, rest % 1000);
    format!("{h:02}:{m:02}:{s:02}{sep}{f:03}")
}

/// A cue's start and end in milliseconds for the writers: an absent start is 0, an absent (or
/// earlier) end is the start, so that the output always parses.
fn cue_ms(segment: &Segment) -> (u64, u64) {
    let start = s_to_ms(segment.start_s);
    let end = segment.end_s.map_or(start, |e| s_to_ms(Some(e)).max(start));
    (start, end)
}

/// A valid time line among a cue's text lines (or the VTT header) almost always means a missing
/// blank line, which would silently merge two cues: refuse it rather than guess.
fn refuse_time_lines(path: &Path, lines: &[(u64, &str)]) -> Result<(), BadInput> {
    for &(n, line) in lines {
        let is_time_line = line.split_once("-->").is_some_and(|(left, right)| {
            parse_timestamp(left.trim()).is_ok()
                && parse_timestamp(right.split_whitespace().next().unwrap_or("")).is_ok()
        });
        if is_time_line {
            return Err(BadInput::new(
                path,
                format!(
                    "time line `{}` inside the text of a cue (or the header): a blank line is \
                     missing before it (cues are separated by blank lines)",
                    shown(line)
                ),
            )
            .line(n));
        }
    }
    Ok(())
}

fn cue_text(lines: &[(u64, &str)]) -> String {
    lines
        .iter()
        .map(|(_, line)| *line)
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------------------------
// SRT

/// Cues separated by blank lines: optional index, time line, text lines. A cue without text
/// lines is accepted with empty text (subtitle tools leave such cues behind).
fn parse_srt(path: &Path, text: &str) -> Result<Vec<Segment>, BadInput> {
    let mut out = Vec::new();
    for block in blocks(text) {
        let (n0, first) = block[0];
        let time_at = if first.contains("-->") {
            0
        } else if all_digits(first.trim()) {
            1
        } else {
            return Err(BadInput::new(
                path,
                format!(
                    "expected a cue number or a time line {}, got `{}` (cues are separated by \
                     blank lines; a cue's text cannot contain a blank line)",
                    Cues::Srt.expected(),
                    shown(first)
                ),
            )
            .line(n0));
        };
        let Some(&(n, time_line)) = block.get(time_at) else {
            return Err(BadInput::new(
                path,
                format!(
                    "cue number {} has no time line after it; expected {} on the next line",
                    first.trim(),
                    Cues::Srt.expected()
                ),
            )
            .line(n0));
        };
        let (start, end) = parse_time_line(path, n, time_line, Cues::Srt)?;
        let text_lines = &block[time_at + 1..];
        refuse_time_lines(path, text_lines)?;
        out.push(Segment {
            start_s: Some(start),
            end_s: Some(end),
            speaker: None,
            text: cue_text(text_lines),
        });
    }
    Ok(out)
}

/// SubRip text. SRT has no speaker field, so speakers are dropped (a `Name: ` prefix would change
/// the text on the way back). Text must not contain blank (or whitespace-only) lines, which end
/// a cue; an absent start is written as 0 and an absent or earlier end as the start.
pub fn write_srt(segments: &[Segment]) -> String {
    let mut out = String::new();
    for (i, segment) in segments.iter().enumerate() {
        let (start, end) = cue_ms(segment);
        let _ = writeln!(
            out,
            "{}\n{} --> {}\n{}\n",
            i + 1,
            clock(start, ','),
            clock(end, ','),
            segment.text
        );
    }
    out
}

// ---------------------------------------------------------------------------------------------
// VTT

/// `WEBVTT` header, then blocks: NOTE / STYLE / REGION (skipped) or cues (optional identifier,
/// time line, text lines).
fn parse_vtt(path: &Path, text: &str) -> Result<Vec<Segment>, BadInput> {
    let first = lines(text).next().map_or("", |(_, l)| l);
    if !starts_with_word(first, "WEBVTT") {
        return Err(BadInput::new(
            path,
            format!(
                "a WebVTT file must start with `WEBVTT` on its first line, got `{}` (an .srt file \
                 renamed to .vtt? keep the .srt extension)",
                shown(first)
            ),
        )
        .line(1));
    }
    let mut out = Vec::new();
    let mut blocks = blocks(text).into_iter();
    // The first block is the WEBVTT line with any header lines (Kind:, Language:) under it.
    if let Some(header) = blocks.next() {
        refuse_time_lines(path, &header)?;
    }
    for block in blocks {
        let (n0, first) = block[0];
        if ["NOTE", "STYLE", "REGION"]
            .iter()
            .any(|w| starts_with_word(first, w))
        {
            continue;
        }
        let time_at = if first.contains("-->") { 0 } else { 1 };
        let Some(&(n, time_line)) = block.get(time_at) else {
            return Err(BadInput::new(
                path,
                format!(
                    "`{}` is neither a cue time line nor followed by one; expected {} (cues are \
                     separated by blank lines; a cue's text cannot contain a blank line)",
                    shown(first),
                    Cues::Vtt.expected()
                ),
            )
            .line(n0));
        };
        let (start, end) = parse_time_line(path, n, time_line, Cues::Vtt)?;
        let text_lines = &block[time_at + 1..];
        refuse_time_lines(path, text_lines)?;
        let raw = cue_text(text_lines);
        let speaker = voice_tag_at(&raw)
            .map(|(name, _)| name)
            .filter(|name| !name.is_empty())
            .map(str::to_string);
        out.push(Segment {
            start_s: Some(start),
            end_s: Some(end),
            speaker,
            text: strip_voice_tags(&raw),
        });
    }
    Ok(out)
}

/// `line` is `word`, or `word` followed by a space or tab (so `NOTEBOOK` is not a NOTE).
fn starts_with_word(line: &str, word: &str) -> bool {
    line.strip_prefix(word)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

/// A voice start tag at the start of `s` (`<v Name>`, `<v.class Name>`): the name and the tag's
/// length in bytes.
fn voice_tag_at(s: &str) -> Option<(&str, usize)> {
    let rest = s.strip_prefix("<v")?;
    // Must be the `v` tag itself, not some other tag starting with v.
    if !rest.starts_with([' ', '\t', '.', '>']) {
        return None;
    }
    let close = rest.find('>')?;
    let inner = &rest[..close];
    if inner.contains('\n') {
        return None;
    }
    // Classes are glued to the `v` with dots; the name follows the first space.
    let name = inner.find([' ', '\t']).map_or("", |i| inner[i..].trim());
    Some((name, 2 + close + 1))
}

/// Removes `<v ...>` and `</v>` tags; other markup (`<i>`, `<b>`, entities) is left for the
/// researcher to decide about.
fn strip_voice_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("</v>") {
            rest = after;
        } else if let Some((_, len)) = voice_tag_at(tail) {
            rest = &tail[len..];
        } else {
            out.push('<');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// WebVTT with the speaker as a `<v Name>` voice tag. Text must not contain blank lines, `-->`
/// or voice tags of its own; a speaker name must not contain `>` or start or end with spaces.
/// Absent times are written as in [`write_srt`].
pub fn write_vtt(segments: &[Segment]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for segment in segments {
        let (start, end) = cue_ms(segment);
        let _ = writeln!(out, "{} --> {}", clock(start, '.'), clock(end, '.'));
        if let Some(speaker) = &segment.speaker {
            let _ = write!(out, "<v {speaker}>");
        }
        let _ = writeln!(out, "{}\n", segment.text);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// JSON writer

#[derive(Serialize)]
struct JsonTranscript<'a> {
    segments: Vec<JsonSegment<'a>>,
}

/// Field order as Whisper writes it, which a derived struct keeps and a JSON map would not.
#[derive(Serialize)]
struct JsonSegment<'a> {
    start: Option<f64>,
    end: Option<f64>,
    speaker: Option<&'a str>,
    text: &'a str,
}

/// `{"segments":[{"start":..,"end":..,"speaker":..,"text":..}]}`; absent values are null.
pub fn write_json(segments: &[Segment]) -> String {
    let doc = JsonTranscript {
        segments: segments
            .iter()
            .map(|s| JsonSegment {
                start: s.start_s,
                end: s.end_s,
                speaker: s.speaker.as_deref(),
                text: &s.text,
            })
            .collect(),
    };
    serde_json::to_string_pretty(&doc).expect("a transcript serialises")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(format: TranscriptFormat, s: &str) -> Result<Vec<Segment>, BadInput> {
        parse(Path::new("t/interview"), format, s.as_bytes())
    }

    fn ok(format: TranscriptFormat, s: &str) -> Vec<Segment> {
        p(format, s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(format: TranscriptFormat, s: &str) -> BadInput {
        match p(format, s) {
            Ok(v) => panic!("accepted: {v:?}"),
            Err(e) => e,
        }
    }

    fn seg(start: f64, end: f64, speaker: Option<&str>, text: &str) -> Segment {
        Segment {
            start_s: Some(start),
            end_s: Some(end),
            speaker: speaker.map(str::to_string),
            text: text.into(),
        }
    }

    fn untimed(speaker: Option<&str>, text: &str) -> Segment {
        Segment {
            start_s: None,
            end_s: None,
            speaker: speaker.map(str::to_string),
            text: text.into(),
        }
    }

    use TranscriptFormat::{Json, Srt, Text, Vtt};

    #[test]
    fn format_by_extension() {
        let f = |s: &str| format_of(Path::new(s));
        assert_eq!(f("a/b.txt"), Some(Text));
        assert_eq!(f("b.JSON"), Some(Json));
        assert_eq!(f("b.Srt"), Some(Srt));
        assert_eq!(f("b.vtt"), Some(Vtt));
        assert_eq!(f("b.doc"), None);
        assert_eq!(f("vtt"), None);
        assert_eq!(f("b.srt.bak"), None);
    }

    // --- text

    #[test]
    fn text_speakers_and_lines() {
        let s = "Interviewer: How did you feel after the second set?\n\
                 Player:  Honestly,  it was tough.\n\
                 \n   \t\n\
                 Q: And the crowd?\n\
                 SPEAKER_01: Amazing.\n\
                 Novak Djokovic: Thank you.\n\
                 10:30 was the start time\n\
                 no label here, just text\n";
        assert_eq!(
            ok(Text, s),
            vec![
                untimed(
                    Some("Interviewer"),
                    "How did you feel after the second set?"
                ),
                // Only one space after the colon goes; inner spacing stays.
                untimed(Some("Player"), " Honestly,  it was tough."),
                untimed(Some("Q"), "And the crowd?"),
                untimed(Some("SPEAKER_01"), "Amazing."),
                untimed(Some("Novak Djokovic"), "Thank you."),
                untimed(None, "10:30 was the start time"),
                untimed(None, "no label here, just text"),
            ]
        );
    }

    #[test]
    fn text_labels_that_are_not_speakers() {
        let long = format!("{}: text", "A".repeat(41));
        let just_40 = format!("{}: text", "A".repeat(40));
        assert_eq!(ok(Text, &long)[0], untimed(None, &long));
        assert_eq!(ok(Text, &just_40)[0].speaker, Some("A".repeat(40)));
        for line in [
            "  Q: leading spaces keep the line as text",
            "a/b: slash in the label",
            "why?: punctuation in the label",
            ": empty label",
            "_x: must start with a letter",
        ] {
            assert_eq!(ok(Text, line), vec![untimed(None, line)], "{line}");
        }
        // Non-ASCII letters are letters.
        assert_eq!(
            ok(Text, "Björn Borg: Hej")[0].speaker.as_deref(),
            Some("Björn Borg")
        );
        assert_eq!(ok(Text, "Q:")[0], untimed(Some("Q"), ""));
    }

    #[test]
    fn text_crlf_bom_and_trailing_spaces() {
        let s = "\u{feff}Interviewer: Hi \r\n  indented line\t\r\nlast";
        assert_eq!(
            ok(Text, s),
            vec![
                untimed(Some("Interviewer"), "Hi "),
                untimed(None, "  indented line\t"),
                untimed(None, "last"),
            ]
        );
        assert!(ok(Text, "").is_empty());
        assert!(ok(Text, "\n \r\n\t\n").is_empty());
    }

    // --- JSON

    const WHISPER: &str = r#"{
  "text": " I think I played well. The crowd was great.",
  "segments": [
    {"id": 0, "seek": 0, "start": 0.0, "end": 2.48, "text": " I think I played well.",
     "tokens": [50364, 286], "temperature": 0.0, "avg_logprob": -0.21,
     "compression_ratio": 1.1, "no_speech_prob": 0.01,
     "words": [{"word": " I", "start": 0.0, "end": 0.2, "probability": 0.9}],
     "speaker": "SPEAKER_00"},
    {"id": 1, "seek": 0, "start": 2.48, "end": 4, "text": " The crowd was great.", "speaker": null},
    {"id": 2, "text": "unaligned", "start": 5.5}
  ],
  "language": "en"
}"#;

    #[test]
    fn json_whisper_with_extra_keys() {
        assert_eq!(
            ok(Json, WHISPER),
            vec![
                seg(0.0, 2.48, Some("SPEAKER_00"), " I think I played well."),
                seg(2.48, 4.0, None, " The crowd was great."),
                Segment {
                    start_s: Some(5.5),
                    end_s: None,
                    speaker: None,
                    text: "unaligned".into()
                },
            ]
        );
    }

    #[test]
    fn json_top_level_array_and_bom() {
        let s = "\u{feff}[{\"text\": \"  hi  \", \"start\": null, \"end\": 1}, {\"text\": \"\"}]";
        assert_eq!(
            ok(Json, s),
            vec![
                Segment {
                    start_s: None,
                    end_s: Some(1.0),
                    speaker: None,
                    text: "  hi  ".into()
                },
                untimed(None, ""),
            ]
        );
        assert!(ok(Json, "[]").is_empty());
        assert!(ok(Json, r#"{"segments": []}"#).is_empty());
    }

    #[test]
    fn json_refusals_name_the_field() {
        let cases: &[(&str, &str, &str)] = &[
            (
                r#"{"segments": [{"text": "a"}, {"text": "b", "start": 1, "end": -2}]}"#,
                "segments[1].end",
                ">= 0",
            ),
            (
                r#"{"segments": [{"text": "a", "start": 3, "end": 2}]}"#,
                "segments[0].end",
                "before its start",
            ),
            (r#"[{"start": 1, "end": 2}]"#, "[0].text", "missing"),
            (r#"[{"text": 5}]"#, "[0].text", "must be a string"),
            (r#"[{"text": null}]"#, "[0].text", "must be a string"),
            (
                r#"[{"text": "a", "start": "1.5"}]"#,
                "[0].start",
                "number of seconds",
            ),
            (r#"[{"text": "a", "speaker": 3}]"#, "[0].speaker", "string"),
            (r#"[1]"#, "[0]", "must be an object"),
            (r#"{"segments": {}}"#, "segments", "must be an array"),
        ];
        for (input, field, words) in cases {
            let e = err(Json, input);
            assert_eq!(e.field.as_deref(), Some(*field), "{input}: {e}");
            assert!(e.message.contains(words), "{input}: {e}");
            assert!(e.to_string().starts_with("t/interview: field `"), "{e}");
        }
    }

    #[test]
    fn json_shape_and_syntax_refusals() {
        let e = err(
            Json,
            "{\"segments\": [\n  {\"text\": \"a\"},\n  {\"text\": }\n]}",
        );
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("malformed JSON"), "{e}");
        let e = err(Json, r#"{"text": "whole transcript only"}"#);
        assert!(e.message.contains("no `segments` key"), "{e}");
        let e = err(Json, "42");
        assert!(e.message.contains("the number 42"), "{e}");
        let e = err(Json, "");
        assert!(e.message.contains("malformed JSON"), "{e}");
    }

    // --- SRT

    const SRT: &str = "1\n\
00:00:01,000 --> 00:00:03,500\n\
I felt good out there today.\n\
\n\
2\n\
00:00:03,500 --> 00:00:06,250\n\
The second set was difficult,\n\
but I stayed focused.\n\
\n\
3\n\
01:02:03,004 --> 01:02:05,000\n\
Thank you.\n";

    #[test]
    fn srt_three_cues() {
        let want = vec![
            seg(1.0, 3.5, None, "I felt good out there today."),
            seg(
                3.5,
                6.25,
                None,
                "The second set was difficult,\nbut I stayed focused.",
            ),
            seg(3723.004, 3725.0, None, "Thank you."),
        ];
        assert_eq!(ok(Srt, SRT), want);
        assert_eq!(ok(Srt, &SRT.replace('\n', "\r\n")), want);
        assert_eq!(ok(Srt, &format!("\u{feff}\n\n{SRT}\n\n")), want);
    }

    #[test]
    fn srt_lenient_times_and_index() {
        let s = "00:00:01.5 --> 00:00:02.25\n  spaced  text \n\n\
                 7\n100:00:00,000 --> 100:00:00,001 X1:10 X2:20\nlong\n\n\
                 8\n00:00:09,000 --> 00:00:09,000\n";
        assert_eq!(
            ok(Srt, s),
            vec![
                seg(1.5, 2.25, None, "  spaced  text "),
                seg(360000.0, 360000.001, None, "long"),
                seg(9.0, 9.0, None, ""),
            ]
        );
    }

    #[test]
    fn srt_refusals_name_the_line() {
        let bad_time =
            "1\n00:00:01,000 --> 00:00:03,500\nfine\n\n2\n00:00:04 --> 00:00:05,000\nx\n";
        let e = err(Srt, bad_time);
        assert_eq!(
            (e.line, e.field.as_deref()),
            (Some(6), Some("start")),
            "{e}"
        );
        assert!(e.message.contains("milliseconds"), "{e}");
        assert!(
            e.to_string().starts_with("t/interview:6: field `start`:"),
            "{e}"
        );

        let cases: &[(&str, u64)] = &[
            ("1\n00:00:01,000 -> 00:00:02,000\nx\n", 2),
            ("1\n00:00:01,000 --> 00:61:02,000\nx\n", 2),
            ("1\n00:00:01,0000 --> 00:00:02,000\nx\n", 2),
            ("1\n00:00:01,000 --> \nx\n", 2),
            ("1\n00:00:01,000 --> 00:00:02,000\nx\n\nstray text\n", 5),
            ("1\n00:00:01,000 --> 00:00:02,000\nx\n\n\n\n12\n", 7),
            ("1\n00:00:01,000 --> 00:00:02,000\nx\n\ny\n", 5),
        ];
        for (input, line) in cases {
            let e = err(Srt, input);
            assert_eq!(e.line, Some(*line), "{input:?}: {e}");
            assert!(e.message.contains("HH:MM:SS,mmm"), "{input:?}: {e}");
        }
        // A missing blank line between cues would merge them.
        let e = err(
            Srt,
            "1\n00:00:01,000 --> 00:00:02,000\nx\n2\n00:00:03,000 --> 00:00:04,000\ny\n",
        );
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.message.contains("blank line is missing"), "{e}");
        // Arrows that are not time lines are text.
        assert_eq!(
            ok(Srt, "00:00:01,000 --> 00:00:02,000\nserve --> net\n")[0].text,
            "serve --> net"
        );
        let e = err(Srt, "1\n00:00:03,000 --> 00:00:02,000\nx\n");
        assert_eq!(e.field.as_deref(), Some("end"));
        assert!(e.message.contains("before its start"), "{e}");
    }

    // --- VTT

    const VTT: &str = "WEBVTT - post-match interview\n\
Kind: captions\n\
Language: en\n\
\n\
NOTE transcribed by hand,\n\
speakers checked against the video\n\
\n\
STYLE\n\
::cue { color: yellow }\n\
\n\
REGION\n\
id:left width:40%\n\
\n\
intro\n\
00:01.000 --> 00:03.500 align:start position:10%\n\
<v Interviewer>How do you feel?\n\
\n\
00:00:03.500 --> 00:00:07.250\n\
<v.loud Novak Djokovic>I'm <i>very</i> happy &amp; tired.\n\
Really.</v>\n\
\n\
2\n\
01:00:00.000 --> 01:00:01.000 line:0\n\
No voice here &lt;3\n";

    #[test]
    fn vtt_blocks_voices_and_settings() {
        assert_eq!(
            ok(Vtt, VTT),
            vec![
                seg(1.0, 3.5, Some("Interviewer"), "How do you feel?"),
                seg(
                    3.5,
                    7.25,
                    Some("Novak Djokovic"),
                    "I'm <i>very</i> happy &amp; tired.\nReally."
                ),
                seg(3600.0, 3601.0, None, "No voice here &lt;3"),
            ]
        );
        assert_eq!(ok(Vtt, &VTT.replace('\n', "\r\n")), ok(Vtt, VTT));
    }

    #[test]
    fn vtt_voice_tag_details() {
        let cue = |text: &str| ok(Vtt, &format!("WEBVTT\n\n00:00.000 --> 00:01.000\n{text}\n"));
        // Only a tag at the start names the speaker; all voice tags leave the text.
        assert_eq!(
            cue("<v A>Hi</v> <v B>there</v>")[0],
            seg(0.0, 1.0, Some("A"), "Hi there")
        );
        assert_eq!(cue("hi <v B>there")[0], seg(0.0, 1.0, None, "hi there"));
        assert_eq!(cue("<v.a.b>x")[0], seg(0.0, 1.0, None, "x"));
        // Other tags that start with v, and a lone `<`, stay.
        assert_eq!(cue("<video> a < b")[0].text, "<video> a < b");
        assert_eq!(cue("<v Unclosed")[0].text, "<v Unclosed");
        assert_eq!(
            cue("<v  Spaced Name >x")[0].speaker.as_deref(),
            Some("Spaced Name")
        );
    }

    #[test]
    fn vtt_refusals() {
        for bad in [
            "",
            "WEBVTTX\n",
            "1\n00:00:01,000 --> 00:00:02,000\nsrt\n",
            "\n\nWEBVTT\n",
        ] {
            let e = err(Vtt, bad);
            assert_eq!(e.line, Some(1), "{bad:?}: {e}");
            assert!(e.message.contains("must start with `WEBVTT`"), "{e}");
        }
        let e = err(
            Vtt,
            "WEBVTT\n\n00:00.000 --> 00:01.000\nok\n\nid\n00:01 --> 00:02.000\n",
        );
        assert_eq!(
            (e.line, e.field.as_deref()),
            (Some(7), Some("start")),
            "{e}"
        );
        assert!(e.message.contains("MM:SS.mmm"), "{e}");
        let e = err(Vtt, "WEBVTT\n\nlonely identifier\n");
        assert_eq!(e.line, Some(3), "{e}");
        let e = err(Vtt, "WEBVTT\n\nid\nnot a time\ntext\n");
        assert_eq!(e.line, Some(4), "{e}");
        let e = err(
            Vtt,
            "WEBVTT\n00:00.000 --> 00:01.000\nheader swallowed the cue\n",
        );
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.message.contains("blank line is missing"), "{e}");
        let e = err(
            Vtt,
            "WEBVTT\n\n00:00.000 --> 00:01.000\na\n00:01.000 --> 00:02.000\nb\n",
        );
        assert_eq!(e.line, Some(5), "{e}");
        let e = err(Vtt, "WEBVTT\n\n00:05.000 --> 00:04.000\ntext\n");
        assert_eq!((e.line, e.field.as_deref()), (Some(3), Some("end")), "{e}");
        assert!(ok(Vtt, "WEBVTT").is_empty());
        assert!(ok(Vtt, "\u{feff}WEBVTT\tfile\r\n\r\nNOTE only a note\r\n").is_empty());
    }

    // --- encoding

    #[test]
    fn invalid_utf8_names_line_and_byte() {
        let cases: &[(TranscriptFormat, &[u8], u64, usize)] = &[
            (Text, b"Q: fine\nPlayer: caf\xe9 ok\n", 2, 19),
            (Json, b"[\n{\"text\": \"a\"},\n{\"text\": \"\xff\"}]", 3, 27),
            (
                Srt,
                b"1\r\n00:00:01,000 --> 00:00:02,000\r\n\xc3\x28\r\n",
                3,
                34,
            ),
            (
                Vtt,
                b"\xef\xbb\xbfWEBVTT\n\n00:00.000 --> 00:01.000\n\n\nx\x80",
                6,
                38,
            ),
        ];
        for (format, bytes, line, at) in cases {
            let e = parse(Path::new("t.x"), *format, bytes).unwrap_err();
            assert_eq!(e.line, Some(*line), "{format:?}: {e}");
            assert_eq!(
                e.message,
                format!(
                    "invalid UTF-8 at byte {at}; transcripts must be UTF-8 (re-save the file as \
                     UTF-8)"
                ),
                "{format:?}"
            );
        }
    }

    // --- writers

    #[test]
    fn writers_produce_the_documented_text() {
        let segs = vec![
            seg(1.0, 3.5, Some("Interviewer"), "How was it?"),
            seg(3723.004, 3725.0, None, "Good.\nVery good."),
        ];
        assert_eq!(
            write_srt(&segs),
            "1\n00:00:01,000 --> 00:00:03,500\nHow was it?\n\n\
             2\n01:02:03,004 --> 01:02:05,000\nGood.\nVery good.\n\n"
        );
        assert_eq!(
            write_vtt(&segs),
            "WEBVTT\n\n00:00:01.000 --> 00:00:03.500\n<v Interviewer>How was it?\n\n\
             01:02:03.004 --> 01:02:05.000\nGood.\nVery good.\n\n"
        );
        let json: Value = serde_json::from_str(&write_json(&segs)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"segments": [
                {"start": 1.0, "end": 3.5, "speaker": "Interviewer", "text": "How was it?"},
                {"start": 3723.004, "end": 3725.0, "speaker": null, "text": "Good.\nVery good."}
            ]})
        );
        // Untimed segments still give cues that parse: start 0, end = start.
        let srt = write_srt(&[untimed(None, "x"), seg(5.0, 2.0, None, "y")]);
        assert_eq!(
            ok(Srt, &srt),
            vec![seg(0.0, 0.0, None, "x"), seg(5.0, 5.0, None, "y")]
        );
    }

    // --- properties

    /// A line of printable text that SRT and VTT can carry: not blank, no `<`/`>` (so no voice
    /// tags or arrows), any script.
    fn cue_line() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9éüß中文😀.,!?'\"&;:-][a-zA-Z0-9 éüß中文😀.,!?'\"&;:-]{0,30}"
    }

    fn cue_text_strategy() -> impl Strategy<Value = String> {
        proptest::collection::vec(cue_line(), 1..4).prop_map(|lines| lines.join("\n"))
    }

    fn speaker() -> impl Strategy<Value = Option<String>> {
        proptest::option::of("[A-Z][a-zéö]{0,8}( [A-Z][a-zöé_0-9]{0,8}){0,2}")
    }

    /// Timed segments with whole-millisecond times, as the writers can represent them.
    fn timed_segments() -> impl Strategy<Value = Vec<Segment>> {
        let one = (
            0u64..400_000_000,
            0u64..600_000,
            speaker(),
            cue_text_strategy(),
        )
            .prop_map(|(start, len, speaker, text)| Segment {
                start_s: Some(start as f64 / 1000.0),
                end_s: Some((start + len) as f64 / 1000.0),
                speaker,
                text,
            });
        proptest::collection::vec(one, 0..8)
    }

    /// Tokens that steer random input into the parsers' interesting paths.
    fn near_miss() -> impl Strategy<Value = String> {
        let tokens = vec![
            "WEBVTT",
            "NOTE",
            "STYLE",
            " ",
            "\n",
            "\r\n",
            "-->",
            "00",
            "1",
            ":",
            ",",
            ".",
            "<v",
            "<v ",
            ">",
            "</v>",
            "é",
            "中",
            "\u{feff}",
            "[",
            "{",
            "\"text\"",
            "\"segments\"",
            "}",
            "]",
            "null",
            "-",
            "Q",
            "\t",
        ];
        proptest::collection::vec(proptest::sample::select(tokens), 0..80).prop_map(|t| t.concat())
    }

    proptest! {
        #[test]
        fn srt_round_trip_drops_speakers(segs in timed_segments()) {
            let back = ok(Srt, &write_srt(&segs));
            let want: Vec<Segment> =
                segs.into_iter().map(|s| Segment { speaker: None, ..s }).collect();
            prop_assert_eq!(back, want);
        }

        #[test]
        fn vtt_round_trip(segs in timed_segments()) {
            prop_assert_eq!(ok(Vtt, &write_vtt(&segs)), segs);
        }

        #[test]
        fn json_round_trip(
            segs in timed_segments(),
            extra in proptest::collection::vec(
                (proptest::option::of(0u64..1_000_000), proptest::option::of("\\PC*"), "(\\PC|\n)*"),
                0..4,
            ),
        ) {
            // JSON also carries absent times and any text, blank lines and markup included.
            let mut segs = segs;
            segs.extend(extra.into_iter().map(|(start, speaker, text)| Segment {
                start_s: start.map(|ms| ms as f64 / 1000.0),
                end_s: None,
                speaker,
                text,
            }));
            prop_assert_eq!(ok(Json, &write_json(&segs)), segs);
        }

        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            for format in [Text, Json, Srt, Vtt] {
                let _ = parse(Path::new("x"), format, &bytes);
            }
        }

        #[test]
        fn never_panics_on_near_misses(s in near_miss()) {
            for format in [Text, Json, Srt, Vtt] {
                let _ = parse(Path::new("x"), format, s.as_bytes());
            }
        }
    }
}
