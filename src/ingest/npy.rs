//! NumPy `.npy` files (format versions 1.0, 2.0 and 3.0) holding embedding vectors.
//!
//! Layout: the magic `\x93NUMPY`, a major and a minor version byte, the header length (u16
//! little-endian in 1.0, u32 in 2.0 and 3.0), the header itself (a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 768), }`, padded with spaces and a
//! newline), then the raw array data.
//!
//! Embedding files (one vector per video frame) run to gigabytes, so the reader checks the
//! header and the file length up front and then streams rows in bounded chunks: memory stays
//! flat whatever the file size.
//!
//! Why not the `npyz` crate: its streaming reader (`NpyFile::data`) yields one `Result` per
//! element, where this reader decodes 1 MiB chunks on the ingest's hot path, and it reports a
//! bad header as a generic I/O error, where xp names the key and says what to do (a float64
//! `descr`, a column-major array). Files numpy itself wrote are the reference in
//! `tests/modalities.rs` (`npy_files_numpy_wrote_read_back_exactly`).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::BadInput;

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// numpy itself refuses headers over 10 kB by default; this limit is looser but still stops a
/// corrupt length field from allocating gigabytes.
const MAX_HEADER_LEN: u64 = 1 << 20;
/// Bytes decoded per read in `read_rows`, so the scratch buffer stays small.
const CHUNK_BYTES: usize = 1 << 20;
/// numpy pads the header so the data starts at a multiple of this.
const ARRAY_ALIGN: usize = 64;
/// numpy (>= 1.23) leaves room after the dict so the first axis can grow in place.
const GROWTH_AXIS_MAX_DIGITS: usize = 21;
/// Headers longer than this are not quoted in full in error messages.
const QUOTE_LEN: usize = 120;

const EXPECTED: &str = "xp reads float32 or float16 embeddings";
const SHAPES: &str = "xp reads a 2-D array [frames, dim] or a 1-D vector [dim]";

/// Element types xp accepts in embedding files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Element {
    F32,
    F16,
}

impl Element {
    fn size(self) -> usize {
        match self {
            Element::F32 => 4,
            Element::F16 => 2,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Element::F32 => "float32",
            Element::F16 => "float16",
        }
    }
}

/// A `.npy` file opened for streaming reads of its rows.
pub struct NpyReader {
    path: PathBuf,
    file: BufReader<File>,
    element: Element,
    big_endian: bool,
    shape: Vec<usize>,
    rows_read: usize,
    scratch: Vec<u8>,
}

impl NpyReader {
    /// Parses and checks the header; checks the file length equals header + prod(shape) * item
    /// size (a truncated file is refused here, before any row is read).
    pub fn open(path: &Path) -> Result<NpyReader, BadInput> {
        let bad = |message: String| BadInput::new(path, message);
        let file = File::open(path).map_err(|e| bad(format!("cannot open: {e}")))?;
        let file_len = file
            .metadata()
            .map_err(|e| bad(format!("cannot read: {e}")))?
            .len();
        let mut file = BufReader::new(file);

        let mut magic = [0u8; 6];
        if file.read_exact(&mut magic).is_err() || &magic != MAGIC {
            return Err(bad(
                "not a .npy file: it does not start with the NumPy magic bytes `\\x93NUMPY`".into(),
            ));
        }
        let mut version = [0u8; 2];
        file.read_exact(&mut version)
            .map_err(|e| bad(format!("truncated: the file ends inside its header ({e})")))?;
        let len_bytes = match version {
            [1, 0] => 2,
            [2, 0] | [3, 0] => 4,
            [major, minor] => {
                return Err(bad(format!(
                    "unsupported .npy format version {major}.{minor}: xp reads versions 1.0, \
                     2.0 and 3.0"
                )));
            }
        };
        let mut len_field = [0u8; 4];
        file.read_exact(&mut len_field[..len_bytes])
            .map_err(|e| bad(format!("truncated: the file ends inside its header ({e})")))?;
        let header_len = u64::from(u32::from_le_bytes(len_field));
        let prefix_len = 8 + len_bytes as u64;
        // Check the length against the file before allocating: a garbage length must not
        // allocate, and a short file is a truncation, not a parse error.
        if prefix_len + header_len > file_len {
            return Err(bad(format!(
                "truncated: the header is {header_len} bytes long but the file holds only {} \
                 bytes after the {prefix_len}-byte prefix",
                file_len - prefix_len
            )));
        }
        if header_len > MAX_HEADER_LEN {
            return Err(bad(format!(
                "the header is {header_len} bytes long; .npy headers of plain arrays are a few \
                 hundred bytes, so this is not a valid .npy file"
            )));
        }
        let mut raw = vec![0u8; header_len as usize];
        file.read_exact(&mut raw)
            .map_err(|e| bad(format!("truncated: the file ends inside its header ({e})")))?;
        // 1.0 and 2.0 headers are latin-1, 3.0 headers UTF-8.
        let text = if version[0] == 3 {
            String::from_utf8(raw).map_err(|_| {
                bad("the header is not valid UTF-8 (format 3.0 headers are UTF-8)".into())
            })?
        } else {
            raw.iter().map(|&b| char::from(b)).collect()
        };

        let header = Header::parse(&text).map_err(|e| e.into_bad_input(path, &text))?;
        let items = header
            .shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
        let data_len = items
            .and_then(|n| n.checked_mul(header.element.size() as u64))
            .filter(|&n| usize::try_from(n).is_ok())
            .ok_or_else(|| {
                bad(format!("shape {} is too large", shape_repr(&header.shape))).field("shape")
            })?;
        let data_start = prefix_len + header_len;
        let held = file_len - data_start;
        let needs = format!(
            "shape {} of {} needs {data_len} bytes of data after the {data_start}-byte header",
            shape_repr(&header.shape),
            header.element.name()
        );
        if held < data_len {
            return Err(bad(format!(
                "truncated: {needs}, but the file holds only {held}"
            )));
        }
        if held > data_len {
            return Err(bad(format!(
                "{} unexpected bytes after the data: {needs}, but the file holds {held}; xp \
                 refuses rather than guess which is right",
                held - data_len
            )));
        }
        Ok(NpyReader {
            path: path.to_path_buf(),
            file,
            element: header.element,
            big_endian: header.big_endian,
            shape: header.shape,
            rows_read: 0,
            scratch: Vec::new(),
        })
    }

    pub fn element(&self) -> Element {
        self.element
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Rows: shape[0] for a 2-D array, 1 for a 1-D array (a single vector).
    pub fn rows(&self) -> usize {
        if self.shape.len() == 2 {
            self.shape[0]
        } else {
            1
        }
    }

    /// Vector length: shape[1] for 2-D, shape[0] for 1-D.
    pub fn dim(&self) -> usize {
        self.shape[self.shape.len() - 1]
    }

    /// Appends up to `max_rows` rows (row-major, converted to f32) to `out`; returns how many
    /// rows were read, 0 at the end. On error `out` is left as it was.
    pub fn read_rows(&mut self, max_rows: usize, out: &mut Vec<f32>) -> Result<usize, BadInput> {
        let rows = max_rows.min(self.rows() - self.rows_read);
        if rows == 0 {
            return Ok(0);
        }
        let size = self.element.size();
        let mut items = rows * self.dim();
        let kept = out.len();
        out.reserve(items);
        while items > 0 {
            let take = items.min(CHUNK_BYTES / size);
            self.scratch.resize(take * size, 0);
            if let Err(e) = self.file.read_exact(&mut self.scratch) {
                out.truncate(kept);
                return Err(BadInput::new(
                    &self.path,
                    format!(
                        "cannot read the data (was the file changed since it was opened?): {e}"
                    ),
                ));
            }
            decode(self.element, self.big_endian, &self.scratch, out);
            items -= take;
        }
        self.rows_read += rows;
        Ok(rows)
    }
}

fn decode(element: Element, big_endian: bool, bytes: &[u8], out: &mut Vec<f32>) {
    match (element, big_endian) {
        (Element::F32, false) => out.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ),
        (Element::F32, true) => out.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        ),
        (Element::F16, false) => out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()),
        ),
        (Element::F16, true) => out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_be_bytes([b[0], b[1]]).to_f32()),
        ),
    }
}

/// A shape as Python prints a tuple: `()`, `(5,)`, `(2, 3)`.
fn shape_repr(shape: &[usize]) -> String {
    match shape {
        [] => "()".into(),
        [n] => format!("({n},)"),
        _ => {
            let parts: Vec<String> = shape.iter().map(usize::to_string).collect();
            format!("({})", parts.join(", "))
        }
    }
}

/// The three keys of a .npy header, checked.
#[derive(Debug)]
struct Header {
    element: Element,
    big_endian: bool,
    shape: Vec<usize>,
}

/// Why a header was refused: either it is not a Python literal at all, or one of its keys
/// holds something xp does not read.
enum HeaderError {
    Syntax(String),
    Key(&'static str, String),
}

impl HeaderError {
    fn into_bad_input(self, path: &Path, text: &str) -> BadInput {
        match self {
            HeaderError::Syntax(why) => BadInput::new(
                path,
                format!("cannot parse the header {}: {why}", quote(text)),
            ),
            HeaderError::Key(key, why) => BadInput::new(path, why).field(key),
        }
    }
}

/// The header trimmed and cut to a readable length, for error messages.
fn quote(text: &str) -> String {
    let text = text.trim();
    let cut: String = text.chars().take(QUOTE_LEN).collect();
    if cut.len() < text.len() {
        format!("`{cut}…`")
    } else {
        format!("`{cut}`")
    }
}

impl Header {
    fn parse(text: &str) -> Result<Header, HeaderError> {
        let mut parser = Parser {
            chars: text.chars().collect(),
            at: 0,
        };
        let value = parser.value(0).map_err(HeaderError::Syntax)?;
        parser.skip_space();
        if parser.at < parser.chars.len() {
            return Err(HeaderError::Syntax(format!(
                "unexpected `{}` after the dict",
                parser.chars[parser.at]
            )));
        }
        let Py::Dict(entries) = value else {
            return Err(HeaderError::Syntax("the header is not a dict".into()));
        };

        let (mut descr, mut fortran, mut shape) = (None, None, None);
        for (key, value) in entries {
            let slot = match &key {
                Py::Str(k) if k == "descr" => &mut descr,
                Py::Str(k) if k == "fortran_order" => &mut fortran,
                Py::Str(k) if k == "shape" => &mut shape,
                other => {
                    return Err(HeaderError::Syntax(format!(
                        "unexpected key {}: a .npy header has exactly `descr`, `fortran_order` \
                         and `shape`",
                        other.repr()
                    )));
                }
            };
            if slot.replace(value).is_some() {
                return Err(HeaderError::Syntax(format!(
                    "key {} appears twice",
                    key.repr()
                )));
            }
        }
        let missing = |key: &str| HeaderError::Syntax(format!("the key `{key}` is missing"));
        let descr = descr.ok_or_else(|| missing("descr"))?;
        let fortran = fortran.ok_or_else(|| missing("fortran_order"))?;
        let shape = shape.ok_or_else(|| missing("shape"))?;

        let (element, big_endian) =
            parse_descr(&descr).map_err(|e| HeaderError::Key("descr", e))?;
        let shape = parse_shape(&shape).map_err(|e| HeaderError::Key("shape", e))?;
        let Py::Bool(fortran) = fortran else {
            return Err(HeaderError::Key(
                "fortran_order",
                format!("expected True or False, got {}", fortran.repr()),
            ));
        };
        // Column-major bytes differ from row-major ones only when two axes are longer than 1.
        if fortran && shape.iter().filter(|&&d| d > 1).count() > 1 {
            return Err(HeaderError::Key(
                "fortran_order",
                format!(
                    "fortran_order is True (column-major data, shape {}): xp reads row-major \
                     (C-ordered) arrays; save np.ascontiguousarray(a) instead",
                    shape_repr(&shape)
                ),
            ));
        }
        Ok(Header {
            element,
            big_endian,
            shape,
        })
    }
}

/// `'<f4'` and friends. Returns the element and whether it is big-endian.
fn parse_descr(descr: &Py) -> Result<(Element, bool), String> {
    let text = match descr {
        Py::Str(s) => s.as_str(),
        Py::List(_) => {
            return Err(format!(
                "a structured (record) dtype {}: {EXPECTED}; save the embedding field alone, \
                 e.g. np.ascontiguousarray(a['field'], dtype='float32')",
                quote(&descr.repr())
            ));
        }
        other => {
            return Err(format!(
                "expected a dtype string such as '<f4', got {}",
                other.repr()
            ));
        }
    };
    let (order, rest) = match text.chars().next() {
        Some(c @ ('<' | '>' | '=' | '|')) => (c, &text[1..]),
        _ => ('=', text),
    };
    // Native order (`=`, `|`) is the writer's, which is little-endian on every machine that
    // produces embeddings today.
    let big_endian = order == '>';
    let kind = rest.chars().next().unwrap_or(' ');
    let size: Option<usize> = rest
        .get(kind.len_utf8()..)
        .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok());
    match (kind, size) {
        ('f', Some(4)) => return Ok((Element::F32, big_endian)),
        ('f', Some(2)) => return Ok((Element::F16, big_endian)),
        _ => {}
    }
    let bits = size.map(|s| (s * 8).to_string()).unwrap_or_default();
    let (name, hint) = match kind {
        'f' => (format!("float{bits}"), None),
        'i' => (format!("int{bits}"), None),
        'u' => (format!("uint{bits}"), None),
        'c' => (format!("complex{bits}"), None),
        'b' => ("bool".to_string(), None),
        'O' => (
            "Python objects".to_string(),
            Some("save a numeric array instead, e.g. np.stack(vectors).astype('float32')"),
        ),
        'U' | 'S' | 'a' => (
            "strings".to_string(),
            Some("save the embedding vectors themselves, as float32"),
        ),
        'M' | 'm' => (
            "dates or times".to_string(),
            Some("save the embedding vectors as float32"),
        ),
        _ => (
            "an unknown dtype".to_string(),
            Some("save the embeddings as float32"),
        ),
    };
    let hint = hint.unwrap_or("convert with a.astype('float32')");
    Err(format!("{name} (`{text}`): {EXPECTED}; {hint}"))
}

fn parse_shape(shape: &Py) -> Result<Vec<usize>, String> {
    let (Py::Tuple(items) | Py::List(items)) = shape else {
        return Err(format!(
            "expected a tuple such as (2, 768), got {}",
            shape.repr()
        ));
    };
    let dims = items
        .iter()
        .map(|d| match d {
            Py::Int(n) => usize::try_from(*n).map_err(|_| format!("dimension {n} is too large")),
            other => Err(format!("dimensions must be integers, got {}", other.repr())),
        })
        .collect::<Result<Vec<usize>, String>>()?;
    let repr = shape_repr(&dims);
    match dims.len() {
        0 => Err(format!("a 0-D array (shape ()): {SHAPES}")),
        1 | 2 => {
            if dims[dims.len() - 1] == 0 {
                Err(format!(
                    "vectors of length 0 (shape {repr}): {SHAPES} with dim > 0"
                ))
            } else {
                Ok(dims)
            }
        }
        n => Err(format!(
            "a {n}-D array (shape {repr}): {SHAPES}; pool or reshape it to [frames, dim] first"
        )),
    }
}

/// The few Python literals a .npy header can hold.
#[derive(Debug, Clone, PartialEq)]
enum Py {
    Str(String),
    Int(u64),
    Bool(bool),
    None,
    Tuple(Vec<Py>),
    List(Vec<Py>),
    Dict(Vec<(Py, Py)>),
}

impl Py {
    /// Roughly as Python prints it, for error messages.
    fn repr(&self) -> String {
        let join = |items: &[Py]| items.iter().map(Py::repr).collect::<Vec<_>>().join(", ");
        match self {
            Py::Str(s) => format!("'{s}'"),
            Py::Int(n) => n.to_string(),
            Py::Bool(true) => "True".into(),
            Py::Bool(false) => "False".into(),
            Py::None => "None".into(),
            Py::Tuple(items) if items.len() == 1 => format!("({},)", items[0].repr()),
            Py::Tuple(items) => format!("({})", join(items)),
            Py::List(items) => format!("[{}]", join(items)),
            Py::Dict(entries) => {
                let parts: Vec<String> = entries
                    .iter()
                    .map(|(k, v)| format!("{}: {}", k.repr(), v.repr()))
                    .collect();
                format!("{{{}}}", parts.join(", "))
            }
        }
    }
}

/// Nesting deeper than this is garbage, and recursing on it could overflow the stack.
const MAX_DEPTH: usize = 16;

/// A recursive-descent parser for the Python literal subset numpy writes.
struct Parser {
    chars: Vec<char>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\n' | '\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        self.skip_space();
        match self.peek() {
            Some(found) if found == c => {
                self.at += 1;
                Ok(())
            }
            Some(found) => Err(format!("expected `{c}`, found `{found}`")),
            None => Err(format!("expected `{c}`, found the end")),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Py, String> {
        if depth > MAX_DEPTH {
            return Err("nested too deeply".into());
        }
        self.skip_space();
        let Some(c) = self.peek() else {
            return Err("unexpected end".into());
        };
        match c {
            '{' => {
                self.at += 1;
                let mut entries = Vec::new();
                while !self.close('}') {
                    let key = self.value(depth + 1)?;
                    self.expect(':')?;
                    let value = self.value(depth + 1)?;
                    entries.push((key, value));
                    if !self.comma() {
                        self.expect('}')?;
                        break;
                    }
                }
                Ok(Py::Dict(entries))
            }
            '(' => {
                self.at += 1;
                let (items, trailing_comma) = self.items(')', depth)?;
                // `(5)` is just 5 in Python; only a comma makes a one-element tuple.
                if items.len() == 1 && !trailing_comma {
                    Ok(items.into_iter().next().unwrap())
                } else {
                    Ok(Py::Tuple(items))
                }
            }
            '[' => {
                self.at += 1;
                Ok(Py::List(self.items(']', depth)?.0))
            }
            '\'' | '"' => self.string(c),
            '0'..='9' => self.int(),
            c if c.is_ascii_alphabetic() => {
                let start = self.at;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    self.at += 1;
                }
                let word: String = self.chars[start..self.at].iter().collect();
                match word.as_str() {
                    "True" => Ok(Py::Bool(true)),
                    "False" => Ok(Py::Bool(false)),
                    "None" => Ok(Py::None),
                    _ => Err(format!("unexpected `{word}`")),
                }
            }
            other => Err(format!("unexpected `{other}`")),
        }
    }

    /// Consumes `close` (after spaces) if it is next.
    fn close(&mut self, close: char) -> bool {
        self.skip_space();
        if self.peek() == Some(close) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn comma(&mut self) -> bool {
        self.close(',')
    }

    /// Comma-separated values up to `close`; also says whether the last one had a comma.
    fn items(&mut self, close: char, depth: usize) -> Result<(Vec<Py>, bool), String> {
        let mut items = Vec::new();
        let mut trailing_comma = false;
        while !self.close(close) {
            items.push(self.value(depth + 1)?);
            trailing_comma = self.comma();
            if !trailing_comma {
                self.expect(close)?;
                break;
            }
        }
        Ok((items, trailing_comma))
    }

    fn string(&mut self, quote: char) -> Result<Py, String> {
        self.at += 1;
        let mut s = String::new();
        loop {
            match self.peek() {
                None => return Err("unterminated string".into()),
                Some(c) if c == quote => {
                    self.at += 1;
                    return Ok(Py::Str(s));
                }
                Some('\\') => {
                    // numpy's own strings never need escapes; keeping the escaped character
                    // is enough to read past one.
                    self.at += 1;
                    let Some(c) = self.peek() else {
                        return Err("unterminated string".into());
                    };
                    s.push(c);
                    self.at += 1;
                }
                Some(c) => {
                    s.push(c);
                    self.at += 1;
                }
            }
        }
    }

    fn int(&mut self) -> Result<Py, String> {
        let start = self.at;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
        }
        let digits: String = self.chars[start..self.at].iter().collect();
        // Python 2 numpy wrote long integers as `3L`.
        if matches!(self.peek(), Some('L' | 'l')) {
            self.at += 1;
        }
        digits
            .parse()
            .map(Py::Int)
            .map_err(|_| format!("integer {digits} is too large"))
    }
}

/// Writes a C-ordered little-endian float32 array (version 1.0 header, padded so data starts at
/// a multiple of 64 bytes as numpy does).
pub fn write_f32(path: &Path, shape: &[usize], values: &[f32]) -> io::Result<()> {
    write_array(path, shape, values, Element::F32)
}

/// Same, float16 (`'<f2'`); values are rounded to f16.
pub fn write_f16(path: &Path, shape: &[usize], values: &[f32]) -> io::Result<()> {
    write_array(path, shape, values, Element::F16)
}

fn write_array(path: &Path, shape: &[usize], values: &[f32], element: Element) -> io::Result<()> {
    let count = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if count != Some(values.len()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "shape {} does not hold {} values",
                shape_repr(shape),
                values.len()
            ),
        ));
    }
    let descr = match element {
        Element::F32 => "<f4",
        Element::F16 => "<f2",
    };
    let mut out = BufWriter::new(File::create(path)?);
    out.write_all(&header_bytes(descr, shape)?)?;
    let mut buf = Vec::with_capacity(CHUNK_BYTES);
    for chunk in values.chunks(CHUNK_BYTES / 4) {
        buf.clear();
        match element {
            Element::F32 => chunk
                .iter()
                .for_each(|v| buf.extend_from_slice(&v.to_le_bytes())),
            Element::F16 => chunk
                .iter()
                .for_each(|v| buf.extend_from_slice(&half::f16::from_f32(*v).to_le_bytes())),
        }
        out.write_all(&buf)?;
    }
    out.into_inner().map_err(io::IntoInnerError::into_error)?;
    Ok(())
}

/// Magic, version, length and padded header, byte for byte as `np.save` writes them.
fn header_bytes(descr: &str, shape: &[usize]) -> io::Result<Vec<u8>> {
    let mut dict = format!(
        "{{'descr': '{descr}', 'fortran_order': False, 'shape': {}, }}",
        shape_repr(shape)
    );
    if let Some(first) = shape.first() {
        let digits = first.to_string().len();
        dict.extend(std::iter::repeat_n(
            ' ',
            GROWTH_AXIS_MAX_DIGITS.saturating_sub(digits),
        ));
    }
    // Version 1.0 unless the header outgrows its u16 length, as numpy does.
    for (major, len_bytes) in [(1u8, 2usize), (2, 4)] {
        let unpadded = MAGIC.len() + 2 + len_bytes + dict.len() + 1;
        let padded_len = dict.len() + 1 + ARRAY_ALIGN - unpadded % ARRAY_ALIGN;
        let len_field = match (major, u16::try_from(padded_len), u32::try_from(padded_len)) {
            (1, Ok(n), _) => n.to_le_bytes().to_vec(),
            (2, _, Ok(n)) => n.to_le_bytes().to_vec(),
            _ => continue,
        };
        let mut bytes = Vec::with_capacity(unpadded + ARRAY_ALIGN);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&[major, 0]);
        bytes.extend_from_slice(&len_field);
        bytes.extend_from_slice(dict.as_bytes());
        bytes.resize(bytes.len() + padded_len - dict.len() - 1, b' ');
        bytes.push(b'\n');
        return Ok(bytes);
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        "the .npy header is too large",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The prefix and padded header numpy writes for `header`, in format version `major`.
    fn prefix(major: u8, header: &str) -> Vec<u8> {
        let len_bytes = if major == 1 { 2 } else { 4 };
        let unpadded = 8 + len_bytes + header.len() + 1;
        let total = unpadded.next_multiple_of(64);
        let header_len = total - 8 - len_bytes;
        let mut bytes = b"\x93NUMPY".to_vec();
        bytes.extend_from_slice(&[major, 0]);
        bytes.extend_from_slice(&(header_len as u32).to_le_bytes()[..len_bytes]);
        bytes.extend_from_slice(header.as_bytes());
        bytes.resize(total - 1, b' ');
        bytes.push(b'\n');
        bytes
    }

    fn file_with(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy");
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    fn read_all(path: &Path, chunk: usize) -> Vec<f32> {
        let mut reader = NpyReader::open(path).unwrap();
        let mut out = Vec::new();
        while reader.read_rows(chunk, &mut out).unwrap() > 0 {}
        out
    }

    fn refusal(bytes: &[u8]) -> String {
        let (_dir, path) = file_with(bytes);
        match NpyReader::open(&path) {
            Ok(_) => panic!("accepted {:?}", String::from_utf8_lossy(bytes)),
            Err(e) => {
                let message = e.to_string();
                assert!(
                    message.starts_with(&path.display().to_string()),
                    "{message}"
                );
                message
            }
        }
    }

    fn with_header(header: &str, data: &[u8]) -> Vec<u8> {
        let mut bytes = prefix(1, header);
        bytes.extend_from_slice(data);
        bytes
    }

    fn le_f32(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn reads_the_bytes_numpy_writes() {
        // np.save of np.arange(6, dtype='<f4').reshape(2, 3), written out by hand.
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        let mut bytes = b"\x93NUMPY\x01\x00\x76\x00".to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[b' '; 58]);
        bytes.push(b'\n');
        assert_eq!(bytes.len(), 128);
        bytes.extend_from_slice(&le_f32(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]));
        let (_dir, path) = file_with(&bytes);

        let reader = NpyReader::open(&path).unwrap();
        assert_eq!(reader.element(), Element::F32);
        assert_eq!(reader.shape(), &[2, 3]);
        assert_eq!((reader.rows(), reader.dim()), (2, 3));
        assert_eq!(read_all(&path, 100), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);

        // Our writer produces the very same bytes.
        let ours = path.with_extension("ours.npy");
        write_f32(&ours, &[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert_eq!(std::fs::read(&ours).unwrap(), bytes);
    }

    #[test]
    fn reads_big_endian_f16_one_d_and_version_2() {
        let values = [1.5f32, -2.25, 1e-3, 65504.0];
        let be: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
        let bytes = with_header(
            "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }",
            &be,
        );
        let (_dir, path) = file_with(&bytes);
        assert_eq!(read_all(&path, 1), values);

        let halves: Vec<half::f16> = values.iter().map(|&v| half::f16::from_f32(v)).collect();
        let le: Vec<u8> = halves.iter().flat_map(|h| h.to_le_bytes()).collect();
        let bytes = with_header(
            "{'descr': '<f2', 'fortran_order': False, 'shape': (4,), }",
            &le,
        );
        let (_dir, path) = file_with(&bytes);
        let reader = NpyReader::open(&path).unwrap();
        assert_eq!(reader.element(), Element::F16);
        assert_eq!((reader.rows(), reader.dim()), (1, 4));
        let expected: Vec<f32> = halves.iter().map(|h| h.to_f32()).collect();
        assert_eq!(read_all(&path, 3), expected);

        let be: Vec<u8> = halves.iter().flat_map(|h| h.to_be_bytes()).collect();
        let bytes = with_header(
            "{'descr': '>f2', 'fortran_order': False, 'shape': (4,), }",
            &be,
        );
        let (_dir, path) = file_with(&bytes);
        assert_eq!(read_all(&path, 3), expected);

        // Version 2.0 (u32 header length), keys in another order, odd spacing, a list shape,
        // Python 2 longs.
        let header = "{ \"shape\" :[1L,4], 'fortran_order':False,'descr':'=f4' }";
        let mut bytes = prefix(2, header);
        bytes.extend_from_slice(&le_f32(&values));
        let (_dir, path) = file_with(&bytes);
        assert_eq!(read_all(&path, 7), values);

        // 3.0: a UTF-8 header; here plain ASCII.
        let mut bytes = prefix(3, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,)}");
        bytes.extend_from_slice(&le_f32(&values));
        let (_dir, path) = file_with(&bytes);
        assert_eq!(read_all(&path, 7), values);
    }

    #[test]
    fn chunked_reads_give_the_same_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        let values: Vec<f32> = (0..13 * 5).map(|i| i as f32 * 0.5 - 3.0).collect();
        write_f32(&path, &[13, 5], &values).unwrap();
        for chunk in [1, 2, 7, 13, 100] {
            let mut reader = NpyReader::open(&path).unwrap();
            let mut out = Vec::new();
            let mut counts = Vec::new();
            loop {
                let n = reader.read_rows(chunk, &mut out).unwrap();
                if n == 0 {
                    break;
                }
                counts.push(n);
            }
            assert_eq!(out, values, "chunk {chunk}");
            assert_eq!(counts.iter().sum::<usize>(), 13);
            assert!(counts.iter().all(|&n| n <= chunk));
            assert_eq!(reader.read_rows(chunk, &mut out).unwrap(), 0);
        }
        // A read larger than the internal chunk crosses chunk boundaries correctly.
        let big: Vec<f32> = (0..300_000).map(|i| i as f32).collect();
        write_f16(&path, &[1000, 300], &big).unwrap();
        let expected: Vec<f32> = big
            .iter()
            .map(|&v| half::f16::from_f32(v).to_f32())
            .collect();
        assert_eq!(read_all(&path, 1000), expected);
    }

    #[test]
    fn refuses_other_dtypes() {
        let f64 = with_header(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
            &[0; 16],
        );
        let m = refusal(&f64);
        assert!(m.contains("float64 (`<f8`)"), "{m}");
        assert!(m.contains("astype('float32')"), "{m}");
        assert!(m.contains("field `descr`"), "{m}");

        let i32 = with_header(
            "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }",
            &[0; 8],
        );
        assert!(refusal(&i32).contains("int32 (`<i4`)"));
        let u8 = with_header(
            "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }",
            &[0; 2],
        );
        assert!(refusal(&u8).contains("uint8 (`|u1`)"));
        let obj = with_header(
            "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }",
            &[0; 16],
        );
        let m = refusal(&obj);
        assert!(m.contains("Python objects (`|O`)"), "{m}");
        let rec = with_header(
            "{'descr': [('a', '<f4'), ('b', '<i4')], 'fortran_order': False, 'shape': (2,), }",
            &[0; 16],
        );
        assert!(refusal(&rec).contains("structured"));
    }

    #[test]
    fn refuses_fortran_order_and_bad_shapes() {
        let data = le_f32(&[0.0; 6]);
        let m = refusal(&with_header(
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
            &data,
        ));
        assert!(m.contains("fortran_order is True"), "{m}");
        assert!(m.contains("np.ascontiguousarray(a)"), "{m}");
        // The same bytes either way for a single vector.
        let (_dir, path) = file_with(&with_header(
            "{'descr': '<f4', 'fortran_order': True, 'shape': (6,), }",
            &data,
        ));
        assert_eq!(read_all(&path, 1), vec![0.0; 6]);

        let m = refusal(&with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (), }",
            &data[..4],
        ));
        assert!(m.contains("0-D array (shape ())"), "{m}");
        assert!(m.contains("[frames, dim]"), "{m}");
        let m = refusal(&with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }",
            &data,
        ));
        assert!(m.contains("3-D array (shape (1, 2, 3))"), "{m}");
        let m = refusal(&with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 0), }",
            &[],
        ));
        assert!(m.contains("length 0"), "{m}");
    }

    #[test]
    fn refuses_bad_magic_headers_and_lengths() {
        assert!(refusal(b"").contains("not a .npy file"));
        assert!(refusal(b"PK\x03\x04 a zip, maybe an .npz").contains("not a .npy file"));
        assert!(refusal(b"\x93NUMPY\x04\x00\x10\x00").contains("version 4.0"));
        assert!(refusal(b"\x93NUMPY\x01").contains("truncated"));
        assert!(refusal(b"\x93NUMPY\x01\x00\xff\x00{'descr'").contains("truncated"));

        let m = refusal(&with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), ",
            &[],
        ));
        assert!(m.contains("cannot parse the header `{'descr'"), "{m}");
        let long = format!("{{'descr': '<f4', 'x': '{}'}}", "y".repeat(300));
        let m = refusal(&with_header(&long, &[]));
        assert!(m.contains("unexpected key 'x'"), "{m}");
        assert!(m.contains("…`") && m.len() < 400, "{m}");
        let m = refusal(&with_header("{'descr': '<f4', 'shape': (2,), }", &[0; 8]));
        assert!(m.contains("`fortran_order` is missing"), "{m}");
        let m = refusal(&with_header("(1, 2)", &[]));
        assert!(m.contains("not a dict"), "{m}");

        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        let m = refusal(&with_header(header, &le_f32(&[0.0; 5])));
        assert!(
            m.contains("truncated: shape (2, 3) of float32 needs 24 bytes"),
            "{m}"
        );
        assert!(m.contains("holds only 20"), "{m}");
        let m = refusal(&with_header(header, &le_f32(&[0.0; 7])));
        assert!(m.contains("4 unexpected bytes after the data"), "{m}");
    }

    #[test]
    fn writer_refuses_a_shape_that_does_not_fit_the_values() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_f32(&dir.path().join("a.npy"), &[2, 3], &[0.0; 5]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    fn finite() -> impl Strategy<Value = f32> {
        use proptest::num::f32::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
        POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO
    }

    fn array() -> impl Strategy<Value = (Vec<usize>, Vec<f32>)> {
        (0usize..40, 1usize..20, any::<bool>()).prop_flat_map(|(rows, dim, one_d)| {
            let shape = if one_d { vec![dim] } else { vec![rows, dim] };
            let count: usize = shape.iter().product();
            (Just(shape), proptest::collection::vec(finite(), count))
        })
    }

    proptest! {
        #[test]
        fn write_then_read_is_exact((shape, values) in array(), chunk in 1usize..50) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("a.npy");
            write_f32(&path, &shape, &values).unwrap();
            let got = read_all(&path, chunk);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&got), bits(&values));

            write_f16(&path, &shape, &values).unwrap();
            let reader = NpyReader::open(&path).unwrap();
            prop_assert_eq!(reader.shape(), &shape[..]);
            prop_assert_eq!(reader.element(), Element::F16);
            let rounded: Vec<f32> =
                values.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect();
            prop_assert_eq!(bits(&read_all(&path, chunk)), bits(&rounded));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let (_dir, path) = file_with(&bytes);
            if let Ok(mut reader) = NpyReader::open(&path) {
                let mut out = Vec::new();
                while reader.read_rows(3, &mut out).unwrap() > 0 {}
            }
        }

        #[test]
        fn garbage_headers_never_panic(
            chars in proptest::collection::vec(
                proptest::sample::select(
                    "{}()[]',:\" \n0123456789<>=|fiOLTrueFalsdcphoN\\é".chars().collect::<Vec<_>>()
                ),
                0..120,
            ),
            major in 1u8..4,
            data in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let header: String = chars.into_iter().collect();
            let mut bytes = prefix(major, &header);
            bytes.extend_from_slice(&data);
            let (_dir, path) = file_with(&bytes);
            if let Ok(mut reader) = NpyReader::open(&path) {
                let mut out = Vec::new();
                while reader.read_rows(2, &mut out).unwrap() > 0 {}
            }
        }

        #[test]
        fn corrupted_files_never_panic(
            (shape, values) in array(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("a.npy");
            write_f16(&path, &shape, &values).unwrap();
            let mut bytes = std::fs::read(&path).unwrap();
            // Corrupt the prefix and header, where the checks are.
            let header_end = bytes.len().min(128);
            for (at, byte) in flips {
                bytes[at.index(header_end)] = byte;
            }
            std::fs::write(&path, &bytes).unwrap();
            if let Ok(mut reader) = NpyReader::open(&path) {
                let mut out = Vec::new();
                while reader.read_rows(5, &mut out).unwrap() > 0 {}
            }
        }

        #[test]
        fn truncated_files_are_refused(
            (shape, values) in array(),
            cut in any::<prop::sample::Index>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("a.npy");
            write_f32(&path, &shape, &values).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            let cut = cut.index(bytes.len());
            std::fs::write(&path, &bytes[..cut]).unwrap();
            prop_assert!(NpyReader::open(&path).is_err());
        }
    }
}
