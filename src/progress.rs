//! Progress bars on standard error, only when it is a terminal and the user did not ask for
//! quiet output: scripts and logs get clean output.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Makes progress bars that respect `--quiet` and non-terminal output.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub enabled: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        Progress {
            enabled: !quiet && std::io::stderr().is_terminal(),
        }
    }

    pub fn hidden() -> Self {
        Progress { enabled: false }
    }

    /// A group of bars drawn together (e.g. the grid and the run in progress).
    pub fn group(&self) -> MultiProgress {
        if self.enabled {
            MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10))
        } else {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        }
    }

    /// A bar of `len` steps of `unit` (e.g. "files").
    pub fn bar(&self, len: u64, what: &str, unit: &str) -> ProgressBar {
        if !self.enabled {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr_with_hz(10));
        let template = format!(
            "{{spinner}} {what:<10} [{{bar:30}}] {{human_pos}}/{{human_len}} {unit} \
             {{per_sec}} eta {{eta}}"
        );
        bar.set_style(
            ProgressStyle::with_template(&template)
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }
}
