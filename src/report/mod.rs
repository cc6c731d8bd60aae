//! Reports of finished experiments: ranked leaderboards (terminal and Markdown), paired
//! comparisons between variants, and plots.

pub mod leaderboard;
pub mod paired;
pub mod plots;

pub use leaderboard::{LeaderRow, RunResult, aggregate, render_markdown, render_terminal};
pub use plots::{Curve, leaderboard_svg, learning_curves_svg};
