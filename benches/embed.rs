//! Embedding throughput: xp's DINOv2 and BERT on the CPU, at the sizes the paper uses
//! (a plain binary: `cargo bench --bench embed`; `benches/embed_twin.py` times transformers on
//! the same shapes, for BENCHMARKS.md).
//!
//! - DINOv2-base (ViT-B/14, 86 M parameters, trained at 518 px), batches of 8 crops at 224 px
//!   (16 x 16 patches: the position embeddings are resampled, as for real crops).
//! - BERT-base (uncased sizes, 110 M parameters), batches of 8 texts of 128 tokens.
//!
//! The weights are random (speed does not depend on their values), written once in the Hugging
//! Face layout to a temporary folder and loaded through the same path as a downloaded model.
//! Options (environment): XP_BENCH_BATCHES (timed batches per model, default 3),
//! XP_BENCH_EMBED (`dinov2`, `bert` or both, default both).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use burn::prelude::*;
use xp::embed::bert::Bert;
use xp::embed::dinov2::Dinov2;
use xp::ingest::safetensors_file::{self, TensorData as Data};

type B = xp::train::CpuBackend;

const BATCH: usize = 8;

/// Deterministic small values (xorshift), so no denormals or overflow slow anything down.
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0 * scale
        })
        .collect()
}

/// Writes `config.json` and `model.safetensors` (tensors named as the hub's checkpoints).
fn write_folder(dir: &Path, config: serde_json::Value, shapes: &[(String, Vec<usize>)]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let data: Vec<Vec<f32>> = shapes
        .iter()
        .enumerate()
        .map(|(i, (name, shape))| {
            let n = shape.iter().product();
            if name.ends_with("LayerNorm.weight")
                || name.contains("norm") && name.ends_with("weight")
            {
                vec![1.0; n]
            } else {
                values(n, i as u64 + 1, 0.02)
            }
        })
        .collect();
    let tensors: Vec<(&str, &[usize], Data<'_>)> = shapes
        .iter()
        .zip(&data)
        .map(|((name, shape), v)| (name.as_str(), shape.as_slice(), Data::F32(v)))
        .collect();
    safetensors_file::write(&dir.join("model.safetensors"), &tensors, None).unwrap();
}

fn dinov2_base(dir: &Path) {
    let (h, layers, patch, grid) = (768usize, 12, 14usize, 37usize);
    let mut s: Vec<(String, Vec<usize>)> = vec![
        ("embeddings.cls_token".into(), vec![1, 1, h]),
        ("embeddings.mask_token".into(), vec![1, h]),
        (
            "embeddings.position_embeddings".into(),
            vec![1, 1 + grid * grid, h],
        ),
        (
            "embeddings.patch_embeddings.projection.weight".into(),
            vec![h, 3, patch, patch],
        ),
        (
            "embeddings.patch_embeddings.projection.bias".into(),
            vec![h],
        ),
        ("layernorm.weight".into(), vec![h]),
        ("layernorm.bias".into(), vec![h]),
    ];
    for i in 0..layers {
        let p = format!("encoder.layer.{i}");
        for (n, shape) in [
            ("norm1.weight", vec![h]),
            ("norm1.bias", vec![h]),
            ("norm2.weight", vec![h]),
            ("norm2.bias", vec![h]),
            ("layer_scale1.lambda1", vec![h]),
            ("layer_scale2.lambda1", vec![h]),
            ("mlp.fc1.weight", vec![4 * h, h]),
            ("mlp.fc1.bias", vec![4 * h]),
            ("mlp.fc2.weight", vec![h, 4 * h]),
            ("mlp.fc2.bias", vec![h]),
        ] {
            s.push((format!("{p}.{n}"), shape));
        }
        for n in [
            "attention.attention.query",
            "attention.attention.key",
            "attention.attention.value",
            "attention.output.dense",
        ] {
            s.push((format!("{p}.{n}.weight"), vec![h, h]));
            s.push((format!("{p}.{n}.bias"), vec![h]));
        }
    }
    let config = serde_json::json!({
        "model_type": "dinov2", "hidden_size": h, "num_hidden_layers": layers,
        "num_attention_heads": 12, "mlp_ratio": 4, "patch_size": patch, "image_size": 518,
        "layer_norm_eps": 1e-6, "qkv_bias": true, "hidden_act": "gelu", "layerscale_value": 1.0,
    });
    write_folder(dir, config, &s);
}

fn bert_base(dir: &Path) {
    let (h, layers, inner, vocab, positions) = (768usize, 12, 3072usize, 30522usize, 512usize);
    let mut s: Vec<(String, Vec<usize>)> = vec![
        ("embeddings.word_embeddings.weight".into(), vec![vocab, h]),
        (
            "embeddings.position_embeddings.weight".into(),
            vec![positions, h],
        ),
        ("embeddings.token_type_embeddings.weight".into(), vec![2, h]),
        ("embeddings.LayerNorm.weight".into(), vec![h]),
        ("embeddings.LayerNorm.bias".into(), vec![h]),
        ("pooler.dense.weight".into(), vec![h, h]),
        ("pooler.dense.bias".into(), vec![h]),
    ];
    for i in 0..layers {
        let p = format!("encoder.layer.{i}");
        for n in [
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
        ] {
            s.push((format!("{p}.{n}.weight"), vec![h, h]));
            s.push((format!("{p}.{n}.bias"), vec![h]));
        }
        for n in ["attention.output.LayerNorm", "output.LayerNorm"] {
            s.push((format!("{p}.{n}.weight"), vec![h]));
            s.push((format!("{p}.{n}.bias"), vec![h]));
        }
        s.push((format!("{p}.intermediate.dense.weight"), vec![inner, h]));
        s.push((format!("{p}.intermediate.dense.bias"), vec![inner]));
        s.push((format!("{p}.output.dense.weight"), vec![h, inner]));
        s.push((format!("{p}.output.dense.bias"), vec![h]));
    }
    let config = serde_json::json!({
        "model_type": "bert", "hidden_size": h, "num_hidden_layers": layers,
        "num_attention_heads": 12, "intermediate_size": inner, "vocab_size": vocab,
        "max_position_embeddings": positions, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
        "hidden_act": "gelu",
    });
    write_folder(dir, config, &s);
}

/// Times `step` (one batch) `batches` times after one warm-up; returns items per second.
fn time(batches: usize, mut step: impl FnMut()) -> (f64, Vec<f64>) {
    step();
    let mut each = Vec::new();
    for _ in 0..batches {
        let t = Instant::now();
        step();
        each.push(t.elapsed().as_secs_f64());
    }
    let total: f64 = each.iter().sum();
    ((batches * BATCH) as f64 / total, each)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // As the xp binary does: freed memory is kept for the next batch, not faulted in afresh.
    xp::memory::keep_freed_memory();
    let batches: usize = std::env::var("XP_BENCH_BATCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let which = std::env::var("XP_BENCH_EMBED").unwrap_or_else(|_| "dinov2,bert".into());
    let tmp = tempfile::tempdir().unwrap();
    let device = Default::default();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("embedding throughput, CPU ({threads} threads available), batch {BATCH}");
    let mut report: BTreeMap<&str, f64> = BTreeMap::new();
    if which.contains("dinov2") {
        let dir = tmp.path().join("dinov2-base");
        dinov2_base(&dir);
        let model = Dinov2::<B>::load(&dir, &device).unwrap();
        let pixels = values(BATCH * 3 * 224 * 224, 7, 1.0);
        let (rate, each) = time(batches, || {
            let x = Tensor::<B, 4>::from_data(
                TensorData::new(pixels.clone(), [BATCH, 3, 224, 224]),
                &device,
            );
            let _ = model.forward(x).cls().into_data();
        });
        println!("dinov2-base 224 px: {rate:.2} crops/s (batches: {each:.2?} s)");
        report.insert("dinov2_crops_per_s", rate);
    }
    if which.contains("bert") {
        let dir = tmp.path().join("bert-base");
        bert_base(&dir);
        let model = Bert::<B>::load(&dir, &device).unwrap();
        let ids: Vec<i64> = (0..BATCH * 128)
            .map(|i| (i * 7919 % 30000) as i64 + 100)
            .collect();
        let (rate, each) = time(batches, || {
            let x =
                Tensor::<B, 2, Int>::from_data(TensorData::new(ids.clone(), [BATCH, 128]), &device);
            let mask = Tensor::<B, 2>::ones([BATCH, 128], &device);
            let _ = model.forward(x, mask).last_hidden.into_data();
        });
        println!("bert-base 128 tokens: {rate:.2} texts/s (batches: {each:.2?} s)");
        report.insert("bert_texts_per_s", rate);
    }
    if let Some(peak) = xp::memory::peak_mib() {
        println!("peak memory {peak:.0} MiB");
    }
    println!("RESULT {}", serde_json::to_string(&report).unwrap());
}
