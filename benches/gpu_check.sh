#!/usr/bin/env bash
# The GPU check of BENCHMARKS.md, as one script for a machine with an NVIDIA GPU (run by hand).
#
# Build on any x86-64 machine (no GPU needed), then copy the two binaries beside the checkout:
#
#   cargo build --release --features cuda
#   cargo bench --bench train --features cuda --no-run      # prints the bench binary's path
#   mkdir -p gpu-bin && cp target/release/xp <that path> gpu-bin/ && strip gpu-bin/*
#   mv gpu-bin/train-* gpu-bin/train
#
# On the GPU machine, in the checkout: `bash benches/gpu_check.sh [OUT]`. It prints, and writes
# to OUT (default ./gpu-check), per case:
#   1. the training bench on CUDA, yaml sizes, 2,048 and 8,192 frames, both backbones, with an
#      empty kernel cache: the warm-up step (kernel compilation and autotuning) apart from the
#      steady steps;
#   2. the same cases again, each with the cache its first pass filled: what the on-disk caches
#      save;
#   3. the README's main job on CUDA (one seed), twice in one fresh store: with an empty kernel
#      cache, then the same grid again with --force and the cache warm, each run's first step
#      apart.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu-check}"
bin="${GPU_BIN:-gpu-bin}"
mkdir -p "$out"
log="$out/gpu_check.log"
caches="$(mktemp -d)"
{
  echo "# $(date -u +%FT%TZ) $(nproc) cores; $(nvidia-smi -L 2>&1 | head -1)"
  # Each case gets its own kernel cache: empty on the first pass, as that case left it on the
  # second.
  for pass in empty-cache warm-cache; do
    for c in mlp:2048 gcn:2048 mlp:8192 gcn:8192; do
      IFS=: read -r kind frames <<< "$c"
      printf '%s %s: ' "$pass" "$c"
      XP_KERNEL_CACHE="$caches/$kind-$frames" XP_BENCH_DEVICE=cuda XP_BENCH_STEPS=5 \
        timeout 240 "$bin/train" --case "$kind" "$frames" 2>&1 || echo "(failed or timed out)"
    done
  done
  store="$(mktemp -d)"
  for pass in first again; do
    extra=""; [ "$pass" = again ] && extra="--force"
    echo "# main job on CUDA, seed 0, $pass (kernel cache $([ "$pass" = first ] && echo empty || echo warm))"
    start=$SECONDS
    XP_KERNEL_CACHE="$caches/main" timeout 420 "$bin/xp" --store "$store" run \
      experiments/mlp_vs_gcn.yaml --device cuda --set 'seeds=[0]' $extra 2>&1 \
      | grep -E "finished|accuracy|error" || echo "(failed or timed out)"
    echo "# $((SECONDS - start)) s wall"
  done
  echo "# kernel caches: $(du -sh "$caches" | cut -f1)"
} 2>&1 | tee "$log"
