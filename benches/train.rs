//! Training throughput benchmark (a plain binary: `cargo bench --bench train`).
//!
//! For each model and sequence length (2,048, 8,192 and 35,000 frames per video: short,
//! about the iMiGUE median, the longest interview), runs training steps (forward, backward
//! with the trainer's chunked checkpointing, AdamW) on random batches, and reports videos/s,
//! frames/s, the CPU time per wall second and the peak memory of a process that does only
//! that (each case runs in its own child process). Models: the MLP and GCN keypoint
//! classifiers at the sizes of `experiments/mlp_vs_gcn.yaml`, and the fused model of
//! `experiments/paper.yaml` (MLP keypoints + image vectors, one 768-wide vector every 16th
//! frame + a transcript of 8 segment vectors).
//! Options (environment): XP_BENCH_STEPS (default 3), XP_BENCH_BATCH (default 8),
//! XP_BENCH_FRAMES (default "2048,8192,35000"), XP_BENCH_CHUNK (frames per backbone chunk;
//! default: what the trainer picks for the batch), XP_BENCH_MODELS (default "mlp,gcn,fused"),
//! XP_BENCH_DEVICE (`cpu`, the default, or `cuda` in a `--features cuda` build: then the
//! warm-up step, with kernel compilation and autotuning, is what to read apart from the
//! steady steps, and the peak memory printed is the host's).

use std::process::Command;
use std::time::Instant;

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, Tensor};
use xp::experiment::spec::{BackboneName, RunConfig};
use xp::model::{
    Batch, Classifier, ClassifierConfig, ImageBatch, ImageBranchConfig, KeypointBatch, TextBatch,
    TextBranchConfig,
};

fn config(experiment: &str, backbone: BackboneName) -> RunConfig {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(experiment);
    let exp = xp::experiment::spec::load(&path, &[]).expect("shipped experiment parses");
    let mut c = exp.runs[0].config.clone();
    c.model.keypoints.backbone = backbone;
    c
}

/// Size of the stored image and text vectors (DINOv2-Base, BERT-base).
const VECTOR: usize = 768;
/// One image vector every this many frames; segments per transcript.
const IMAGE_STRIDE: usize = 16;
const SEGMENTS: usize = 8;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn peak_mib() -> f64 {
    xp::memory::peak_mib().unwrap_or(f64::NAN)
}

/// One case on a backend: `on_device` picks it (`XP_BENCH_DEVICE`), so a CUDA run goes through
/// the same start-up as `xp run --device cuda` (kernel caches, a clear error without a GPU).
struct Case {
    kind: String,
    frames: usize,
}

impl xp::device::BackendJob for Case {
    type Output = ();
    fn run<Bk: burn::tensor::backend::Backend>(self, device: &Bk::Device) -> anyhow::Result<()> {
        case::<Autodiff<Bk>>(&self.kind, self.frames, device);
        Ok(())
    }
}

/// One case, in this process: prints one result line. `kind`: mlp, gcn or fused.
fn case<B: AutodiffBackend>(kind: &str, frames: usize, device: &B::Device) {
    let steps = env_usize("XP_BENCH_STEPS", 3);
    let batch = env_usize("XP_BENCH_BATCH", 8);
    let device = device.clone();
    let fused = kind == "fused";
    let mut cfg = if fused {
        config("experiments/paper.yaml", BackboneName::Mlp)
    } else if kind == "gcn" {
        config("experiments/mlp_vs_gcn.yaml", BackboneName::Gcn)
    } else {
        config("experiments/mlp_vs_gcn.yaml", BackboneName::Mlp)
    };
    // The bench feeds whole sequences of `frames` (what sampling would keep at this setting).
    cfg.model.sequence.max_frames = frames;
    let channels = 5;
    let mut keypoints = xp::train::model_config(&cfg, channels);
    keypoints.frame_chunk = env_usize("XP_BENCH_CHUNK", keypoints.frame_chunk);
    let seq = &cfg.model.sequence;
    let sequence = xp::train::sequence_config(&cfg);
    let classifier = ClassifierConfig {
        keypoints: Some(keypoints),
        image: fused.then_some(ImageBranchConfig {
            input: VECTOR,
            sequence,
        }),
        text: fused.then_some(TextBranchConfig {
            input: VECTOR,
            dim: seq.dim,
            dropout: seq.dropout,
        }),
        dim: seq.dim,
        dropout: seq.dropout,
    };
    let mut model: Classifier<B> = classifier.init(&device);
    let params = model.num_params();
    let mut optim = AdamWConfig::new().init::<B, Classifier<B>>();
    let normal = Distribution::Normal(0.0, 1.0);
    let kp = KeypointBatch {
        points: Tensor::<B, 4>::random([batch, frames, 137, channels], normal, &device),
        mask: Tensor::<B, 2>::ones([batch, frames], &device),
    };
    let input = if fused {
        let v = frames.div_ceil(IMAGE_STRIDE);
        let index: Vec<i64> = (0..batch)
            .flat_map(|b| (0..frames).map(move |t| (b * v + t / IMAGE_STRIDE) as i64))
            .collect();
        Batch {
            keypoints: Some(kp),
            image: Some(ImageBatch {
                vectors: Tensor::random([batch, v, VECTOR], normal, &device),
                index: Tensor::from_data(
                    burn::tensor::TensorData::new(index, [batch * frames]),
                    &device,
                ),
                mask: Tensor::ones([batch, frames], &device),
            }),
            text: Some(TextBatch {
                vectors: Tensor::random([batch, SEGMENTS, VECTOR], normal, &device),
                mask: Tensor::ones([batch, SEGMENTS], &device),
            }),
            present: Tensor::ones([batch, 3], &device),
        }
    } else {
        Batch::keypoints_only(kp)
    };
    // One warm-up step (on CUDA: kernel compilation and autotuning), then timed steps. Each
    // step ends when the device has finished it.
    let mut times = Vec::new();
    let mut warm_up = 0.0;
    let mut cpu = 0.0;
    for i in 0..=steps {
        let t = Instant::now();
        let cpu_before = xp::memory::cpu_seconds().unwrap_or(f64::NAN);
        let (_, grads) = xp::train::checkpoint::loss_and_grads(&model, &input, |logits| {
            logits.powf_scalar(2.0).mean()
        });
        model = optim.step(1e-3, model, grads);
        B::sync(&device).expect("the device finishes the step");
        if i == 0 {
            warm_up = t.elapsed().as_secs_f64();
        } else {
            times.push(t.elapsed().as_secs_f64());
            cpu += xp::memory::cpu_seconds().unwrap_or(f64::NAN) - cpu_before;
        }
    }
    let _ = model.valid();
    let total: f64 = times.iter().sum();
    let step = total / times.len() as f64;
    println!(
        "{kind:<5} T={frames:<5} batch {batch}: {:.2} s/step, {:.2} videos/s, {:.0} frames/s, {:.0}% CPU, peak memory {:.0} MiB, {params} parameters, warm-up step {warm_up:.2} s",
        step,
        batch as f64 / step,
        (batch * frames) as f64 / step,
        100.0 * cpu / total,
        peak_mib()
    );
}

/// `XP_BENCH_DEVICE`: `cpu` (the default) or `cuda` (a build with `--features cuda`).
fn device() -> xp::device::Device {
    match std::env::var("XP_BENCH_DEVICE").as_deref() {
        Ok("cuda") => xp::device::Device::Cuda,
        Ok("cpu") | Err(_) => xp::device::Device::Cpu,
        Ok(other) => panic!("XP_BENCH_DEVICE={other}: cpu or cuda"),
    }
}

fn main() {
    xp::memory::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--case") {
        let job = Case {
            kind: args[i + 1].clone(),
            frames: args[i + 2].parse().unwrap(),
        };
        if let Err(e) = xp::device::on_device(device(), job) {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
        return;
    }
    println!(
        "training throughput on {}, sizes of experiments/mlp_vs_gcn.yaml (mlp, gcn) and paper.yaml (fused), {} cores available",
        match device() {
            xp::device::Device::Cpu => "the CPU (burn-flex)",
            xp::device::Device::Cuda => "CUDA (burn-cuda; peak memory is the host's)",
        },
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let frames_list = std::env::var("XP_BENCH_FRAMES").unwrap_or_else(|_| "2048,8192,35000".into());
    for frames in frames_list.split(',').map(|f| f.trim().to_string()) {
        let kinds = std::env::var("XP_BENCH_MODELS").unwrap_or_else(|_| "mlp,gcn,fused".into());
        for backbone in kinds.split(',') {
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
