#!/usr/bin/env bash
# Sets up a fresh machine for keras-subset: Python packages (pinned by tools/constraints.txt),
# Bazel (Debian's bazel-bootstrap, offline), Debian's dataset-fashion-mnist, and a data folder
# ./data that holds, in the keras.datasets layout, mnist.npz, cifar100.npz (linked from SOURCE),
# cifar10.npz (built once with SOURCE/get_cifar10.sh, which needs npm) and fashion-mnist/.
# Point KERAS_SUBSET_DATA_DIR at ./data afterwards.
#
# Usage: bash tools/setup.sh [SOURCE]   (SOURCE: a folder with mnist.npz, cifar100.npz and
#                                        get_cifar10.sh; default $KERAS_SUBSET_DATA_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
source_dir=${1:-${KERAS_SUBSET_DATA_DIR:-}}

python3 -m pip install --quiet --disable-pip-version-check -c tools/constraints.txt -e ".[benchmarks,test]"

# Debian packages: Bazel, and Fashion-MNIST (the benchmarks' extra dataset, real IDX files).
fashion=/usr/share/datasets/fashion-mnist
if ! command -v bazel >/dev/null || [ ! -d /usr/src/bazel-bootstrap/mock_repos ] || [ ! -d "$fashion" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq bazel-bootstrap bazel-bootstrap-source dataset-fashion-mnist >/dev/null
fi

mkdir -p data
if [ -n "$source_dir" ]; then
  source_dir=$(realpath "$source_dir")
  for f in mnist.npz cifar100.npz cifar10.npz; do
    if [ -e "$source_dir/$f" ] && [ ! -e "data/$f" ]; then ln -s "$source_dir/$f" "data/$f"; fi
  done
  if [ ! -e data/fashion-mnist ] && [ -d "$fashion" ]; then ln -s "$fashion" data/fashion-mnist; fi
  if [ ! -e data/cifar10.npz ] && [ -x "$source_dir/get_cifar10.sh" -o -f "$source_dir/get_cifar10.sh" ]; then
    bash "$source_dir/get_cifar10.sh" "$PWD/data"
  fi
fi
ls data
