//! DINOv2 (Oquab et al. 2023) as transformers' `Dinov2Model` computes it: a ViT with a CLS
//! token, learned position embeddings resampled to the input's patch grid, pre-norm blocks with
//! LayerScale, an exact-GELU MLP (SwiGLU for the giant model), and a final LayerNorm; and
//! `Dinov2WithRegistersModel` (Darcet et al. 2024): learned register tokens after the CLS token,
//! and the position grid resampled with antialiasing.
//!
//! Sizes come from the folder's `config.json` (small, base, large and giant differ only there);
//! tensor names are those of the published checkpoints (`encoder.layer.N.attention.attention.
//! query`, ...), and transformers 5's own names (`attention.q_proj`, ...) are read too.

use std::path::Path;

use anyhow::{Result, bail};
use burn::prelude::*;
use burn::tensor::activation;

use super::folder::ModelFolder;
use super::layers::{LayerNorm, Linear, SelfAttention, gelu};
use super::resize;

enum Mlp<B: Backend> {
    Gelu {
        fc1: Linear<B>,
        fc2: Linear<B>,
    },
    SwiGlu {
        gate: Linear<B>,
        up: Linear<B>,
        down: Linear<B>,
    },
}

struct Block<B: Backend> {
    norm1: LayerNorm<B>,
    attention: SelfAttention<B>,
    norm2: LayerNorm<B>,
    mlp: Mlp<B>,
}

/// A loaded DINOv2 encoder.
pub struct Dinov2<B: Backend> {
    pub hidden: usize,
    pub patch: usize,
    /// The conv patch embedding as a linear map of flattened `[3, patch, patch]` pixels.
    patch_embed: Linear<B>,
    cls: Tensor<B, 3>,
    /// The trained position embeddings, `[1 + grid * grid, hidden]`, kept on the host to be
    /// resampled per input size.
    positions: Vec<f32>,
    grid: usize,
    /// DINOv2 with registers: `[1, registers, hidden]`, put between the CLS token and the
    /// patches after the position embeddings are added (they have none).
    register_tokens: Option<Tensor<B, 3>>,
    blocks: Vec<Block<B>>,
    norm: LayerNorm<B>,
    device: B::Device,
    /// blake3 of `model.safetensors`.
    pub weights_hash: String,
}

/// What one forward pass gives.
pub struct Dinov2Output<B: Backend> {
    /// `[batch, 1 + registers + patches, hidden]`, after the final LayerNorm.
    pub last_hidden: Tensor<B, 3>,
    /// Register tokens after the CLS token (0 without registers).
    pub registers: usize,
}

impl<B: Backend> Dinov2Output<B> {
    /// The CLS token: transformers' `pooler_output`.
    pub fn cls(&self) -> Tensor<B, 2> {
        let [b, _, h] = self.last_hidden.dims();
        self.last_hidden
            .clone()
            .slice([0..b, 0..1, 0..h])
            .reshape([b, h])
    }

    /// The mean of the patch tokens (registers left out).
    pub fn patch_mean(&self) -> Tensor<B, 2> {
        let [b, s, h] = self.last_hidden.dims();
        self.last_hidden
            .clone()
            .slice([0..b, 1 + self.registers..s, 0..h])
            .mean_dim(1)
            .reshape([b, h])
    }
}

fn layer_names(i: usize, new: &str, old: &str) -> Vec<String> {
    vec![
        format!("encoder.layer.{i}.{old}"),
        format!("encoder.layer.{i}.{new}"),
        format!("dinov2.encoder.layer.{i}.{old}"),
    ]
}

fn names(name: &str) -> Vec<String> {
    vec![name.to_string(), format!("dinov2.{name}")]
}

impl<B: Backend> Dinov2<B> {
    /// Loads the model of a Hugging Face DINOv2 folder.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        let mut f = ModelFolder::open(dir, &["dinov2", "dinov2_with_registers"])?;
        let registers = f.usize("num_register_tokens", Some(0))?;
        let hidden = f.usize("hidden_size", None)?;
        let heads = f.usize("num_attention_heads", None)?;
        let layers = f.usize("num_hidden_layers", None)?;
        let patch = f.usize("patch_size", None)?;
        let image = f.usize("image_size", None)?;
        let channels = f.usize("num_channels", Some(3))?;
        let eps = f.number("layer_norm_eps", Some(1e-6))?;
        let mlp_ratio = f.number("mlp_ratio", Some(4.0))?;
        let qkv_bias = f.flag("qkv_bias", true);
        let swiglu = f.flag("use_swiglu_ffn", false);
        let act = f.string("hidden_act", "gelu");
        if act != "gelu" {
            bail!(
                "{}: hidden_act `{act}` is not supported (DINOv2 uses gelu)",
                dir.display()
            );
        }
        if heads == 0 || hidden % heads != 0 {
            bail!(
                "{}: hidden_size {hidden} is not a multiple of num_attention_heads {heads}",
                dir.display()
            );
        }
        let grid = image / patch;
        let flat = channels * patch * patch;
        let conv: Tensor<B, 4> = f.tensor(
            &names("embeddings.patch_embeddings.projection.weight"),
            [hidden, channels, patch, patch],
            device,
        )?;
        let patch_embed = Linear::from_parts(
            conv.reshape([hidden, flat]).transpose(),
            Some(f.tensor(
                &names("embeddings.patch_embeddings.projection.bias"),
                [hidden],
                device,
            )?),
        );
        let cls = f.tensor(&names("embeddings.cls_token"), [1, 1, hidden], device)?;
        let register_tokens = if registers > 0 {
            Some(f.tensor(
                &names("embeddings.register_tokens"),
                [1, registers, hidden],
                device,
            )?)
        } else {
            None
        };
        let positions: Tensor<B, 3> = f.tensor(
            &names("embeddings.position_embeddings"),
            [1, 1 + grid * grid, hidden],
            device,
        )?;
        let positions = positions.into_data().convert::<f32>().to_vec::<f32>()?;
        let inner = (hidden as f64 * mlp_ratio) as usize;
        let mut blocks = Vec::with_capacity(layers);
        for i in 0..layers {
            let n = |new: &str, old: &str| layer_names(i, new, old);
            let linear = |f: &mut ModelFolder, new: &str, old: &str, a, b, bias| {
                Linear::load(f, &n(new, old), a, b, bias, device)
            };
            let attention = SelfAttention::new(
                linear(
                    &mut f,
                    "attention.q_proj",
                    "attention.attention.query",
                    hidden,
                    hidden,
                    qkv_bias,
                )?,
                linear(
                    &mut f,
                    "attention.k_proj",
                    "attention.attention.key",
                    hidden,
                    hidden,
                    qkv_bias,
                )?,
                linear(
                    &mut f,
                    "attention.v_proj",
                    "attention.attention.value",
                    hidden,
                    hidden,
                    qkv_bias,
                )?,
                linear(
                    &mut f,
                    "attention.o_proj",
                    "attention.output.dense",
                    hidden,
                    hidden,
                    true,
                )?,
                heads,
            );
            let mlp = if swiglu {
                // transformers: int(int(hidden * mlp_ratio) * 2 / 3) rounded up to a multiple of 8.
                let hidden_features = (inner * 2 / 3).div_ceil(8) * 8;
                // The published checkpoints fuse gate and up in `weights_in` [2 * width, hidden].
                let fused = f
                    .find(&n("mlp.weights_in.weight", "mlp.weights_in.weight"))
                    .is_some();
                if fused {
                    let w: Tensor<B, 2> = f.tensor(
                        &n("mlp.weights_in.weight", "mlp.weights_in.weight"),
                        [2 * hidden_features, hidden],
                        device,
                    )?;
                    let b: Tensor<B, 1> = f.tensor(
                        &n("mlp.weights_in.bias", "mlp.weights_in.bias"),
                        [2 * hidden_features],
                        device,
                    )?;
                    let part = |k: usize| {
                        let rows = w.clone().narrow(0, k * hidden_features, hidden_features);
                        let bias = b.clone().narrow(0, k * hidden_features, hidden_features);
                        Linear::from_parts(rows.transpose(), Some(bias))
                    };
                    Mlp::SwiGlu {
                        gate: part(0),
                        up: part(1),
                        down: linear(
                            &mut f,
                            "mlp.down_proj",
                            "mlp.weights_out",
                            hidden_features,
                            hidden,
                            true,
                        )?,
                    }
                } else {
                    Mlp::SwiGlu {
                        gate: linear(
                            &mut f,
                            "mlp.gate_proj",
                            "mlp.gate_proj",
                            hidden,
                            hidden_features,
                            true,
                        )?,
                        up: linear(
                            &mut f,
                            "mlp.up_proj",
                            "mlp.up_proj",
                            hidden,
                            hidden_features,
                            true,
                        )?,
                        down: linear(
                            &mut f,
                            "mlp.down_proj",
                            "mlp.weights_out",
                            hidden_features,
                            hidden,
                            true,
                        )?,
                    }
                }
            } else {
                Mlp::Gelu {
                    fc1: linear(&mut f, "mlp.fc1", "mlp.fc1", hidden, inner, true)?,
                    fc2: linear(&mut f, "mlp.fc2", "mlp.fc2", inner, hidden, true)?,
                }
            };
            // LayerScale (one learned factor per channel on each branch) is folded into the
            // branch's last linear layer.
            let scale1 = f.tensor(
                &n("layer_scale1.lambda1", "layer_scale1.lambda1"),
                [hidden],
                device,
            )?;
            let scale2: Tensor<B, 1> = f.tensor(
                &n("layer_scale2.lambda1", "layer_scale2.lambda1"),
                [hidden],
                device,
            )?;
            let mlp = match mlp {
                Mlp::Gelu { fc1, fc2 } => Mlp::Gelu {
                    fc1,
                    fc2: fc2.scale_outputs(scale2),
                },
                Mlp::SwiGlu { gate, up, down } => Mlp::SwiGlu {
                    gate,
                    up,
                    down: down.scale_outputs(scale2),
                },
            };
            blocks.push(Block {
                norm1: LayerNorm::load(&mut f, &n("norm1", "norm1"), hidden, eps, device)?,
                attention: attention.scale_outputs(scale1),
                norm2: LayerNorm::load(&mut f, &n("norm2", "norm2"), hidden, eps, device)?,
                mlp,
            });
        }
        let norm = LayerNorm::load(&mut f, &names("layernorm"), hidden, eps, device)?;
        Ok(Dinov2 {
            hidden,
            patch,
            patch_embed,
            cls,
            positions,
            grid,
            register_tokens,
            blocks,
            norm,
            device: device.clone(),
            weights_hash: f.weights_hash.clone(),
        })
    }

    /// Register tokens (0: plain DINOv2).
    pub fn registers(&self) -> usize {
        self.register_tokens.as_ref().map_or(0, |r| r.dims()[1])
    }

    /// The position embeddings for an input of `height` x `width` pixels: the trained ones when
    /// the grid is the trained one and the input square (transformers' own condition), else the
    /// patch part resampled bicubically to the input's grid.
    fn positions(&self, height: usize, width: usize) -> Tensor<B, 3> {
        let (gh, gw) = (height / self.patch, width / self.patch);
        let h = self.hidden;
        let values = if gh * gw == self.grid * self.grid && height == width {
            self.positions.clone()
        } else {
            // transformers resamples plain bicubic for DINOv2, antialiased bicubic to an
            // explicit size for DINOv2 with registers (after the original repositories).
            let resample = if self.register_tokens.is_some() {
                resize::bicubic_antialiased
            } else {
                resize::bicubic
            };
            let mut v = self.positions[..h].to_vec();
            v.extend(resample(
                &self.positions[h..],
                (self.grid, self.grid),
                (gh, gw),
                h,
            ));
            v
        };
        Tensor::from_data(TensorData::new(values, [1, 1 + gh * gw, h]), &self.device)
    }

    /// `pixels` `[batch, 3, height, width]`, already preprocessed (resized, cropped,
    /// normalised). Pixels beyond the last whole patch are ignored, as the convolution does.
    pub fn forward(&self, pixels: Tensor<B, 4>) -> Dinov2Output<B> {
        let [b, c, height, width] = pixels.dims();
        let p = self.patch;
        let (gh, gw) = (height / p, width / p);
        let patches = pixels
            .slice([0..b, 0..c, 0..gh * p, 0..gw * p])
            .reshape([b, c, gh, p, gw, p])
            .permute([0, 2, 4, 1, 3, 5])
            .reshape([b, gh * gw, c * p * p]);
        let tokens = self.patch_embed.forward(patches);
        let cls = self.cls.clone().expand([b, 1, self.hidden]);
        let mut x = Tensor::cat(vec![cls, tokens], 1) + self.positions(height, width);
        if let Some(registers) = &self.register_tokens {
            let [_, r, h] = registers.dims();
            let s = 1 + gh * gw;
            x = Tensor::cat(
                vec![
                    x.clone().slice([0..b, 0..1, 0..h]),
                    registers.clone().expand([b, r, h]),
                    x.slice([0..b, 1..s, 0..h]),
                ],
                1,
            );
        }
        for block in &self.blocks {
            let attended = block
                .attention
                .forward(block.norm1.forward(x.clone()), None);
            x = x + attended;
            let normed = block.norm2.forward(x.clone());
            let mlp = match &block.mlp {
                Mlp::Gelu { fc1, fc2 } => fc2.forward(gelu(fc1.forward(normed))),
                Mlp::SwiGlu { gate, up, down } => down
                    .forward(activation::silu(gate.forward(normed.clone())) * up.forward(normed)),
            };
            x = x + mlp;
        }
        Dinov2Output {
            last_hidden: self.norm.forward(x),
            registers: self.registers(),
        }
    }
}
