//! Training throughput benchmark (a plain binary: `cargo bench --bench train`).
//!
//! For each backbone and sequence length (2,048, 8,192 and 35,000 frames per video: short,
//! about the iMiGUE median, the longest interview), runs training steps (forward, backward
//! with the trainer's chunked checkpointing, AdamW) on random keypoint batches with the model
//! sizes of `experiments/mlp_vs_gcn.yaml`, and reports videos/s, frames/s, the CPU time per
//! wall second and the peak memory of a process that does only that (each case runs in its
//! own child process).
//! Options (environment): XP_BENCH_STEPS (default 3), XP_BENCH_BATCH (default 8),
//! XP_BENCH_FRAMES (default "2048,8192,35000"), XP_BENCH_CHUNK (frames per backbone chunk;
//! default: what the trainer picks for the batch).

use std::process::Command;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, Optimizer};
use burn::tensor::{Distribution, Tensor};
use xp::experiment::spec::{BackboneName, RunConfig};
use xp::model::{Batch, Classifier, KeypointBatch, KeypointModel};

fn config(backbone: BackboneName) -> RunConfig {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/mlp_vs_gcn.yaml");
    let exp = xp::experiment::spec::load(&path, &[]).expect("shipped experiment parses");
    let mut c = exp.runs[0].config.clone();
    c.model.keypoints.backbone = backbone;
    c
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn peak_mib() -> f64 {
    xp::memory::peak_mib().unwrap_or(f64::NAN)
}

/// The trainer's CPU backend.
type B = burn::backend::Autodiff<xp::train::CpuBackend>;

/// One case, in this process: prints one result line.
fn case(backbone: BackboneName, frames: usize) {
    let steps = env_usize("XP_BENCH_STEPS", 3);
    let batch = env_usize("XP_BENCH_BATCH", 8);
    let device = Default::default();
    let mut cfg = config(backbone);
    // The bench feeds whole sequences of `frames` (what sampling would keep at this setting).
    cfg.model.sequence.max_frames = frames;
    let channels = 5;
    let mut model_config = xp::train::model_config(&cfg, channels);
    model_config.frame_chunk = env_usize("XP_BENCH_CHUNK", model_config.frame_chunk);
    let mut model = Classifier::keypoints_only(KeypointModel::<B>::new(&model_config, &device));
    let params = model.num_params();
    let mut optim = AdamWConfig::new().init::<B, Classifier<B>>();
    let input = Batch::keypoints_only(KeypointBatch {
        points: Tensor::<B, 4>::random(
            [batch, frames, 137, channels],
            Distribution::Normal(0.0, 1.0),
            &device,
        ),
        mask: Tensor::<B, 2>::ones([batch, frames], &device),
    });
    // One warm-up step, then timed steps.
    let mut times = Vec::new();
    let mut cpu = 0.0;
    for i in 0..=steps {
        let t = Instant::now();
        let cpu_before = xp::memory::cpu_seconds().unwrap_or(f64::NAN);
        let (_, grads) = xp::train::checkpoint::loss_and_grads(&model, &input, |logits| {
            logits.powf_scalar(2.0).mean()
        });
        model = optim.step(1e-3, model, grads);
        if i > 0 {
            times.push(t.elapsed().as_secs_f64());
            cpu += xp::memory::cpu_seconds().unwrap_or(f64::NAN) - cpu_before;
        }
    }
    let _ = model.valid();
    let total: f64 = times.iter().sum();
    let step = total / times.len() as f64;
    println!(
        "{:<4} T={frames:<5} batch {batch}: {:.2} s/step, {:.2} videos/s, {:.0} frames/s, {:.0}% CPU, peak memory {:.0} MiB, {params} parameters",
        format!("{backbone:?}").to_lowercase(),
        step,
        batch as f64 / step,
        (batch * frames) as f64 / step,
        100.0 * cpu / total,
        peak_mib()
    );
}

fn main() {
    xp::memory::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--case") {
        let backbone = if args[i + 1] == "gcn" {
            BackboneName::Gcn
        } else {
            BackboneName::Mlp
        };
        case(backbone, args[i + 2].parse().unwrap());
        return;
    }
    println!(
        "training throughput, CPU (burn-flex), model sizes of experiments/mlp_vs_gcn.yaml, {} cores available",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let frames_list = std::env::var("XP_BENCH_FRAMES").unwrap_or_else(|_| "2048,8192,35000".into());
    for frames in frames_list.split(',').map(|f| f.trim().to_string()) {
        for backbone in ["mlp", "gcn"] {
            let out = Command::new(std::env::current_exe().unwrap())
                .args(["--case", backbone, &frames])
                .output()
                .unwrap();
            print!("{}", String::from_utf8_lossy(&out.stdout));
            if !out.status.success() {
                println!(
                    "{backbone} T={frames}: failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}
