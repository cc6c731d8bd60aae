//! Experiments: the YAML spec and its grid, run identity, the runner, stored results, and
//! regeneration of recorded runs.

pub mod current;
pub mod identity;
pub mod regenerate;
pub mod results;
pub mod runner;
pub mod spec;
