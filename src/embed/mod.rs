//! Image and text encoders computed in xp itself (burn, any backend), loaded from Hugging Face
//! model folders on disk and checked against transformers on tiny models whose every weight is
//! random (`tests/fixtures/embed/make_fixtures.py` writes the fixtures; `tests/embed.rs` compares).
//!
//! - [`dinov2`]: DINOv2 image encoder (CLS or mean-of-patches vectors of person crops).
//! - [`bert`]: BERT text encoder.
//! - [`images`]: `xp embed images`, the store's crops through DINOv2 into `embeddings`.
//! - [`texts`]: `xp embed text`, the store's transcripts through BERT into `text_embeddings`.
//! - [`folder`]: reading a model folder (config, weights, the file a user must fetch).
//! - [`layers`]: linear, LayerNorm and attention from PyTorch-layout tensors.
//! - [`resize`]: PyTorch's bicubic resampling of the position-embedding grid.

pub mod bert;
pub mod dinov2;
pub mod folder;
pub mod images;
pub mod layers;
pub mod preprocess;
pub mod resize;
pub mod texts;
