//! Reports of finished experiments: ranked leaderboards (terminal and Markdown) and plots.

pub mod leaderboard;
pub mod plots;

pub use leaderboard::{LeaderRow, RunResult, aggregate, render_markdown, render_terminal};
pub use plots::{Curve, leaderboard_svg, learning_curves_svg};
