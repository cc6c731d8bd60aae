//! Training throughput benchmark (a plain binary: `cargo bench --bench train`).
//!
//! For each backbone and sequence length (2,048 and 8,192 frames per video), runs training
//! steps (forward, backward, AdamW) on random keypoint batches with the model sizes of
//! `experiments/mlp_vs_gcn.yaml`, and reports videos/s, frames/s and the peak memory of a
//! process that does only that (each case runs in its own child process).
//! Options (environment): XP_BENCH_STEPS (default 3), XP_BENCH_BATCH (default 8).

use std::process::Command;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::{Distribution, Tensor};
use xp::experiment::spec::{BackboneName, RunConfig};
use xp::model::{KeypointBatch, KeypointModel};

type B = burn::backend::Autodiff<burn::backend::NdArray>;

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

/// One case, in this process: prints one result line.
fn case(backbone: BackboneName, frames: usize) {
    let steps = env_usize("XP_BENCH_STEPS", 3);
    let batch = env_usize("XP_BENCH_BATCH", 8);
    let device = Default::default();
    let mut cfg = config(backbone);
    // The bench feeds whole sequences of `frames` (what sampling would keep at this setting).
    cfg.model.sequence.max_frames = frames;
    let channels = 5;
    let mut model: KeypointModel<B> =
        KeypointModel::new(&xp::train::model_config(&cfg, channels), &device);
    let params = model.num_params();
    let mut optim = AdamWConfig::new().init::<B, KeypointModel<B>>();
    let input = KeypointBatch {
        points: Tensor::<B, 4>::random(
            [batch, frames, 137, channels],
            Distribution::Normal(0.0, 1.0),
            &device,
        ),
        mask: Tensor::<B, 2>::ones([batch, frames], &device),
    };
    // One warm-up step, then timed steps.
    let mut times = Vec::new();
    for i in 0..=steps {
        let t = Instant::now();
        let logits = model.forward(&input);
        let loss = logits.powf_scalar(2.0).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-3, model, grads);
        if i > 0 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    let _ = model.valid();
    let step = times.iter().sum::<f64>() / times.len() as f64;
    println!(
        "{:<4} T={frames:<5} batch {batch}: {:.2} s/step, {:.2} videos/s, {:.0} frames/s, peak memory {:.0} MiB, {params} parameters",
        format!("{backbone:?}").to_lowercase(),
        step,
        batch as f64 / step,
        (batch * frames) as f64 / step,
        peak_mib()
    );
}

fn main() {
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
        "training throughput, CPU (burn ndarray), model sizes of experiments/mlp_vs_gcn.yaml, {} threads",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for frames in [2048, 8192] {
        for backbone in ["mlp", "gcn"] {
            let out = Command::new(std::env::current_exe().unwrap())
                .args(["--case", backbone, &frames.to_string()])
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
