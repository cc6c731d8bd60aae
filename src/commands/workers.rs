//! `xp run --jobs N`: the grid's runs trained by N worker processes at once.
//!
//! Each worker is this same binary, `xp run FILE --only RUN_ID` with the parent's settings, so
//! it plans, loads data, trains and commits exactly as a sequential `xp run` would (the store
//! takes concurrent commits). Processes rather than threads because the CPU backend's random
//! generator is one per process; each worker gets `cores / N` threads, so N workers do not
//! fight over the cores.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use anyhow::{Result, bail};

use crate::cli::RunArgs;
use crate::experiment::runner::{RunPlan, RunSummary};
use crate::progress::Progress;

/// Trains `todo` with `jobs` workers; returns how many finished. Stops handing out runs after
/// a failure and reports every failed run.
pub fn train_in_workers(
    root: &Path,
    args: &RunArgs,
    jobs: usize,
    todo: &[&RunPlan],
    progress: Progress,
) -> Result<usize> {
    let jobs = jobs.min(todo.len()).max(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cores / jobs).max(1);
    let bar = progress.bar(todo.len() as u64, "grid", "runs");
    bar.set_message(format!("{jobs} workers x {threads} threads"));
    let queue = Mutex::new(todo.iter());
    let failures: Mutex<Vec<String>> = Mutex::default();
    let finished = Mutex::new(0usize);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    if !failures.lock().unwrap().is_empty() {
                        return;
                    }
                    let Some(plan) = queue.lock().unwrap().next() else {
                        return;
                    };
                    match train_one_in_worker(root, args, plan, threads) {
                        Ok(report) => {
                            bar.suspend(|| eprint!("{report}"));
                            bar.inc(1);
                            *finished.lock().unwrap() += 1;
                        }
                        Err(e) => failures.lock().unwrap().push(format!(
                            "run {} ({} seed {}): {e:#}",
                            super::short(&plan.id),
                            plan.run.variant,
                            plan.run.seed
                        )),
                    }
                }
            });
        }
    });
    bar.finish_and_clear();
    let failures = failures.into_inner().unwrap();
    let finished = finished.into_inner().unwrap();
    if !failures.is_empty() {
        bail!(
            "{} of the grid's runs failed ({finished} finished and were committed):\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
    Ok(finished)
}

/// Runs one worker process to completion; returns what it printed to stderr.
fn train_one_in_worker(
    root: &Path,
    args: &RunArgs,
    plan: &RunPlan,
    threads: usize,
) -> Result<String> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("--quiet")
        .arg("--store")
        .arg(root)
        .arg("run")
        .arg(&args.file)
        .args(["--only", &plan.id, "--device", args.device.name()]);
    for o in &args.overrides {
        cmd.args(["--set", o]);
    }
    if args.force {
        cmd.arg("--force");
    }
    if args.reuse_other_code {
        cmd.arg("--reuse-other-code");
    }
    let mut child = cmd
        .env("RAYON_NUM_THREADS", threads.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        pipe.read_to_string(&mut stderr)?;
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("the worker exited with {status}:\n{}", stderr.trim_end());
    }
    Ok(stderr)
}

/// The summary of a grid trained by workers.
pub fn summary(plans: &[RunPlan], trained: usize) -> RunSummary {
    RunSummary {
        trained,
        ..RunSummary::of_plans(plans)
    }
}
