//! BERT (Devlin et al. 2019) as transformers' `BertModel` computes it: word, position and
//! token-type embeddings, post-norm encoder layers with exact GELU, and the tanh pooler.
//! Tensor names are those of the published checkpoints, with or without the `bert.` prefix of
//! the pre-training heads' files, LayerNorm as `weight`/`bias` or the older `gamma`/`beta`.
//!
//! RoBERTa (Liu et al. 2019) is the same encoder as transformers' `RobertaModel` computes it:
//! only the position ids differ (counted from `pad_token_id + 1`, padding at `pad_token_id`),
//! with one token type and a byte-level BPE tokenizer (read from `tokenizer.json` like any).

use std::path::Path;

use anyhow::{Result, bail};
use burn::prelude::*;
use burn::tensor::activation;

use super::folder::ModelFolder;
use super::layers::{LayerNorm, Linear, SelfAttention, gelu};

struct Layer<B: Backend> {
    attention: SelfAttention<B>,
    attention_norm: LayerNorm<B>,
    intermediate: Linear<B>,
    output: Linear<B>,
    output_norm: LayerNorm<B>,
}

/// A loaded BERT (or RoBERTa) encoder.
pub struct Bert<B: Backend> {
    /// `bert` or `roberta` (config.json's `model_type`).
    pub architecture: &'static str,
    pub hidden: usize,
    /// The longest sequence the model takes, special tokens included.
    pub max_positions: usize,
    /// RoBERTa: `pad_token_id`; a token's position id is this plus its 1-based rank among the
    /// sequence's non-padding tokens, a padding token's is this. BERT: None (0, 1, 2, ...).
    padding_position: Option<i64>,
    words: Tensor<B, 2>,
    positions: Tensor<B, 2>,
    token_type: Tensor<B, 1>,
    embed_norm: LayerNorm<B>,
    layers: Vec<Layer<B>>,
    pooler: Option<Linear<B>>,
    device: B::Device,
    pub weights_hash: String,
}

fn names(name: &str) -> Vec<String> {
    vec![
        name.to_string(),
        format!("bert.{name}"),
        format!("roberta.{name}"),
    ]
}

/// What one forward pass gives.
pub struct BertOutput<B: Backend> {
    /// `[batch, seq, hidden]`.
    pub last_hidden: Tensor<B, 3>,
    /// transformers' `pooler_output`: tanh(dense(CLS)), when the checkpoint has a pooler.
    pub pooled: Option<Tensor<B, 2>>,
}

impl<B: Backend> Bert<B> {
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        let mut f = ModelFolder::open(dir, &["bert", "roberta"])?;
        let architecture = if f.string("model_type", "bert") == "roberta" {
            "roberta"
        } else {
            "bert"
        };
        let hidden = f.usize("hidden_size", None)?;
        let heads = f.usize("num_attention_heads", None)?;
        let layers = f.usize("num_hidden_layers", None)?;
        let inner = f.usize("intermediate_size", None)?;
        let vocab = f.usize("vocab_size", None)?;
        let position_rows = f.usize("max_position_embeddings", None)?;
        let padding_position = match architecture {
            "roberta" => Some(f.usize("pad_token_id", Some(1))? as i64),
            _ => None,
        };
        // RoBERTa's first rows are for padding and below; the rest number the tokens.
        let max_positions = position_rows - padding_position.map_or(0, |p| p as usize + 1);
        let types = f.usize("type_vocab_size", Some(2))?;
        let eps = f.number("layer_norm_eps", Some(1e-12))?;
        let act = f.string("hidden_act", "gelu");
        if act != "gelu" {
            bail!(
                "{}: hidden_act `{act}` is not supported (BERT uses gelu)",
                dir.display()
            );
        }
        let kind = f.string("position_embedding_type", "absolute");
        if kind != "absolute" {
            bail!(
                "{}: position_embedding_type `{kind}` is not supported",
                dir.display()
            );
        }
        if heads == 0 || hidden % heads != 0 {
            bail!(
                "{}: hidden_size {hidden} is not a multiple of num_attention_heads {heads}",
                dir.display()
            );
        }
        let words = f.tensor(
            &names("embeddings.word_embeddings.weight"),
            [vocab, hidden],
            device,
        )?;
        let positions = f.tensor(
            &names("embeddings.position_embeddings.weight"),
            [position_rows, hidden],
            device,
        )?;
        let token_types: Tensor<B, 2> = f.tensor(
            &names("embeddings.token_type_embeddings.weight"),
            [types, hidden],
            device,
        )?;
        let token_type = token_types.slice([0..1, 0..hidden]).reshape([hidden]);
        let embed_norm =
            LayerNorm::load(&mut f, &names("embeddings.LayerNorm"), hidden, eps, device)?;
        let mut built = Vec::with_capacity(layers);
        for i in 0..layers {
            let n = |s: &str| names(&format!("encoder.layer.{i}.{s}"));
            let linear =
                |f: &mut ModelFolder, s: &str, a, b| Linear::load(f, &n(s), a, b, true, device);
            built.push(Layer {
                attention: SelfAttention::new(
                    linear(&mut f, "attention.self.query", hidden, hidden)?,
                    linear(&mut f, "attention.self.key", hidden, hidden)?,
                    linear(&mut f, "attention.self.value", hidden, hidden)?,
                    linear(&mut f, "attention.output.dense", hidden, hidden)?,
                    heads,
                ),
                attention_norm: LayerNorm::load(
                    &mut f,
                    &n("attention.output.LayerNorm"),
                    hidden,
                    eps,
                    device,
                )?,
                intermediate: linear(&mut f, "intermediate.dense", hidden, inner)?,
                output: linear(&mut f, "output.dense", inner, hidden)?,
                output_norm: LayerNorm::load(&mut f, &n("output.LayerNorm"), hidden, eps, device)?,
            });
        }
        let pooler = if f.find(&names("pooler.dense.weight")).is_some() {
            Some(Linear::load(
                &mut f,
                &names("pooler.dense"),
                hidden,
                hidden,
                true,
                device,
            )?)
        } else {
            None
        };
        Ok(Bert {
            architecture,
            hidden,
            max_positions,
            padding_position,
            words,
            positions,
            token_type,
            embed_norm,
            layers: built,
            pooler,
            device: device.clone(),
            weights_hash: f.weights_hash.clone(),
        })
    }

    /// `ids` `[batch, seq]` token ids, `mask` `[batch, seq]` 1 for tokens and 0 for padding
    /// (token type 0 throughout: one segment). `seq` must not exceed `max_positions`.
    pub fn forward(&self, ids: Tensor<B, 2, Int>, mask: Tensor<B, 2>) -> BertOutput<B> {
        let [b, s] = ids.dims();
        assert!(
            s <= self.max_positions,
            "{s} tokens > {}",
            self.max_positions
        );
        let h = self.hidden;
        let words = self
            .words
            .clone()
            .select(0, ids.clone().reshape([b * s]))
            .reshape([b, s, h]);
        let positions = match self.padding_position {
            None => self.positions.clone().slice([0..s, 0..h]).unsqueeze::<3>(),
            // As transformers numbers them: by the ids, not the mask.
            Some(pad) => {
                let tokens = ids.not_equal_elem(pad).int();
                let ranks = tokens.clone().cumsum(1) * tokens + pad;
                self.positions
                    .clone()
                    .select(0, ranks.reshape([b * s]))
                    .reshape([b, s, h])
            }
        };
        let x = words + positions + self.token_type.clone().unsqueeze::<3>();
        let mut x = self.embed_norm.forward(x);
        // Padding keys get no weight (transformers adds the lowest float to their scores; the
        // softmax gives both exactly 0).
        // A batch without padding skips the mask (applying it costs a pass over every score).
        let padded = mask.clone().min().into_scalar().elem::<f32>() < 0.5;
        let padding = padded.then(|| mask.lower_elem(0.5));
        for layer in &self.layers {
            let attended = layer.attention.forward(x.clone(), padding.clone());
            x = layer.attention_norm.forward(attended + x);
            let inner = gelu(layer.intermediate.forward(x.clone()));
            x = layer.output_norm.forward(layer.output.forward(inner) + x);
        }
        let pooled = self.pooler.as_ref().map(|p| {
            let cls = x.clone().slice([0..b, 0..1, 0..h]).reshape([b, h]);
            activation::tanh(p.forward(cls))
        });
        BertOutput {
            last_hidden: x,
            pooled,
        }
    }

    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// Vectors of texts the model takes whole, all of the same token length (so no padding:
    /// each vector is the text's alone, as [`Bert::embed_text`] gives it).
    pub fn embed_batch<'a>(
        &self,
        texts: impl Iterator<Item = &'a [i64]>,
        pooling: TextPooling,
    ) -> Vec<Vec<f32>> {
        let texts: Vec<&[i64]> = texts.collect();
        let (n, len) = (texts.len(), texts[0].len());
        assert!(texts.iter().all(|t| t.len() == len) && len <= self.max_positions);
        let flat: Vec<i64> = texts.concat();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(flat, [n, len]), &self.device);
        let mask = Tensor::<B, 2>::ones([n, len], &self.device);
        let hidden = self.forward(ids, mask).last_hidden;
        let h = self.hidden;
        let pooled = match pooling {
            TextPooling::Cls => hidden.slice([0..n, 0..1, 0..h]).reshape([n, h]),
            TextPooling::Mean => hidden.mean_dim(1).reshape([n, h]),
        };
        let values = pooled
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("f32 vectors");
        values.chunks(h).map(<[f32]>::to_vec).collect()
    }

    /// One vector for a tokenised text of any length (`ids` with its `[CLS]` first and `[SEP]`
    /// last, as the tokenizer gives them). A text the model takes whole is one window; a longer
    /// one is cut into windows of `max_positions - 2` tokens, each wrapped in `[CLS]` .. `[SEP]`,
    /// starting every half window (the last one ending at the text's end), so every token is
    /// read with context on both sides in some window. Each window's vector is its `[CLS]`
    /// token or the mean of its tokens (`pooling`); the text's vector is the mean over windows.
    pub fn embed_text(&self, ids: &[i64], pooling: TextPooling) -> Vec<f32> {
        assert!(ids.len() >= 2, "a tokenised text has [CLS] and [SEP]");
        let (cls, sep) = (ids[0], ids[ids.len() - 1]);
        let body = &ids[1..ids.len() - 1];
        let size = self.max_positions - 2;
        let windows: Vec<Vec<i64>> = window_starts(body.len(), size)
            .into_iter()
            .map(|s| {
                let mut w = vec![cls];
                w.extend_from_slice(&body[s..(s + size).min(body.len())]);
                w.push(sep);
                w
            })
            .collect();
        let (n, len) = (windows.len(), windows[0].len());
        let flat: Vec<i64> = windows.into_iter().flatten().collect();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(flat, [n, len]), &self.device);
        let mask = Tensor::<B, 2>::ones([n, len], &self.device);
        let hidden = self.forward(ids, mask).last_hidden;
        let h = self.hidden;
        let per_window = match pooling {
            TextPooling::Cls => hidden.slice([0..n, 0..1, 0..h]).reshape([n, h]),
            TextPooling::Mean => hidden.mean_dim(1).reshape([n, h]),
        };
        per_window
            .mean_dim(0)
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("f32 vectors")
    }
}

/// A model folder's `tokenizer.json`, read with Hugging Face's own tokenizers library (the one
/// transformers' fast tokenizers run), truncation and padding off: long texts are windowed by
/// [`Bert::embed_text`], not cut.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

impl Tokenizer {
    pub fn load(dir: &Path) -> Result<Tokenizer> {
        // The model to name when the file is missing: the folder's own, where its config says.
        let architecture = std::fs::read(dir.join(super::folder::CONFIG))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|c| c.get("model_type")?.as_str().map(str::to_string))
            .unwrap_or_else(|| "bert".into());
        let path = super::folder::required(dir, "tokenizer.json", &architecture)?;
        let mut inner = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| anyhow::anyhow!("{}: not a tokenizer file: {e}", path.display()))?;
        inner
            .with_truncation(None)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        inner.with_padding(None);
        Ok(Tokenizer { inner })
    }

    /// The ids of `text`, with the model's special tokens (`[CLS]` .. `[SEP]`).
    pub fn ids(&self, text: &str) -> Result<Vec<i64>> {
        let encoding = self
            .inner
            .encode(text, true)
            .map_err(|e| anyhow::anyhow!("cannot tokenise {text:?}: {e}"))?;
        Ok(encoding.get_ids().iter().map(|&i| i64::from(i)).collect())
    }
}

/// How a text's tokens become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TextPooling {
    /// The `[CLS]` token's final hidden state.
    Cls,
    /// The mean of every token's final hidden state (`[CLS]` and `[SEP]` included).
    Mean,
}

/// Where the windows over `len` tokens start: every `size / 2`, the last one ending at `len`.
pub fn window_starts(len: usize, size: usize) -> Vec<usize> {
    let step = (size / 2).max(1);
    let mut starts: Vec<usize> = (0..=len.saturating_sub(size)).step_by(step).collect();
    if let Some(&last) = starts.last()
        && last + size < len
    {
        starts.push(len - size);
    }
    starts
}

#[cfg(test)]
mod tests {
    use super::window_starts;

    #[test]
    fn windows_cover_every_token_and_end_at_the_end() {
        assert_eq!(window_starts(5, 22), [0]);
        assert_eq!(window_starts(22, 22), [0]);
        assert_eq!(window_starts(56, 22), [0, 11, 22, 33, 34]);
        for len in 1..100 {
            let starts = window_starts(len, 10);
            let last = *starts.last().unwrap();
            assert!(last + 10 >= len, "{len}: {starts:?}");
            assert!(starts.windows(2).all(|w| w[1] > w[0] && w[1] - w[0] <= 5));
        }
    }
}
