//! xp: a content-addressed feature store and experiment tracker for video-based
//! hidden-emotion recognition (iMiGUE).
//!
//! Data flows one way: source files are parsed once by [`ingest`] into typed Arrow batches,
//! written as immutable Parquet parts by [`store`], and everything downstream reads the store
//! through [`query`].

// Training allocates and frees large intermediate arrays every step. glibc's malloc serves each
// one with a fresh mmap and unmaps it on free, so every step faults its whole working set in
// again (most of a GCN step's time went to zeroing pages); mimalloc keeps and reuses freed
// memory. Declared in the library so the binary, benches and tests all run on it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod cli;
pub mod commands;
pub mod dataset;
pub mod demo;
pub mod device;
pub mod embed;
pub mod experiment;
pub mod fault;
pub mod ingest;
pub mod kernel_cache;
pub mod lanes;
pub mod memory;
pub mod model;
pub mod output;
pub mod progress;
pub mod protocol;
pub mod query;
pub mod report;
pub mod schema;
pub mod store;
pub mod system_exp;
pub mod train;
