#!/usr/bin/env bash
# Runs the benchmark folders of docs/results_no_augmentation.md and docs/results_augmentation.md
# (the `cpu` preset on a 2-core machine, one run at a time; seed 0, see docs/provenance.md).
# Usage: KERAS_SUBSET_DATA_DIR=data bash benchmarks/run_cpu_results.sh [OUT]   (OUT: docs/results)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/results}
run() { name=$1; shift; echo "== $name: $*"; python3 -m "$@" --output_dir="$out/$name" > "$out/$name.log" 2>&1; }
mkdir -p "$out"
run mnist benchmarks.mnist --preset=cpu
run cifar10 benchmarks.cifar10 --preset=cpu
run cifar100 benchmarks.cifar100 --preset=cpu
# With augmentation: every run kind; the Adam phases augment live, every L-BFGS phase fits each
# example with 4 fixed augmented copies (--augment_copies, the cpu presets' default; Q of the
# extended sets 5 times the folders' above), the sweep reaching well past Q of the originals.
run mnist_augment benchmarks.mnist --preset=cpu --augment --sweep_ratios=8,16,32,64,128,256
run cifar10_augment benchmarks.cifar10 --preset=cpu --augment --sweep_ratios=4,8,16,32,64,128
run cifar100_augment benchmarks.cifar100 --preset=cpu --augment --sweep_ratios=4,8,16,32,64,128
python3 -m benchmarks.overview "$out"/mnist "$out"/mnist_augment "$out"/cifar10 \
  "$out"/cifar10_augment "$out"/cifar100 "$out"/cifar100_augment --gap_plot="$out"/gap_vs_q.png
