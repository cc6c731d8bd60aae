//! The error every ingest returns for bad input: it names the file, and where it can, the line
//! and the field, so the user can go straight to the problem.

use std::fmt;
use std::path::{Path, PathBuf};

/// Input that xp refuses. Nothing has been written to the store when this is returned.
#[derive(Debug)]
pub struct BadInput {
    pub file: PathBuf,
    pub line: Option<u64>,
    pub field: Option<String>,
    pub message: String,
}

impl BadInput {
    pub fn new(file: &Path, message: impl Into<String>) -> Self {
        BadInput {
            file: file.to_path_buf(),
            line: None,
            field: None,
            message: message.into(),
        }
    }
    pub fn line(mut self, line: u64) -> Self {
        self.line = Some(line);
        self
    }
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": ")?;
        if let Some(field) = &self.field {
            write!(f, "field `{field}`: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for BadInput {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_line_and_field() {
        let e = BadInput::new(Path::new("a/b.csv"), "not a number: `x`")
            .line(7)
            .field("start_frame");
        assert_eq!(
            e.to_string(),
            "a/b.csv:7: field `start_frame`: not a number: `x`"
        );
        let e = BadInput::new(Path::new("f.json"), "truncated");
        assert_eq!(e.to_string(), "f.json: truncated");
    }
}
