#!/usr/bin/env bash
# Reproduces the README's Results (the `cpu` preset on this 2-core machine, one run at a time).
# Usage: KERAS_SUBSET_DATA_DIR=data bash benchmarks/run_cpu_results.sh [OUT]   (OUT: docs/results)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/results}
run() { name=$1; shift; echo "== $name: $*"; python3 -m "$@" --output_dir="$out/$name" > "$out/$name.log" 2>&1; }
mkdir -p "$out"
run mnist benchmarks.mnist --preset=cpu
run cifar10 benchmarks.cifar10 --preset=cpu
run cifar100 benchmarks.cifar100 --preset=cpu
# With augmentation: only the run kinds with Adam phases on the full set, which augmentation
# changes; the L-BFGS-only kinds (lbfgs_full, progressive, sweep) fit un-augmented data and
# are the runs of the folders above (same seed). Without lbfgs_full, these have no paper frame.
aug_runs=--runs=conventional,progressive_adam,subset
run cifar10_augment benchmarks.cifar10 --preset=cpu --augment $aug_runs
run cifar100_augment benchmarks.cifar100 --preset=cpu --augment $aug_runs
run mnist_augment benchmarks.mnist --preset=cpu --augment $aug_runs
