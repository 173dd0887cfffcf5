#!/usr/bin/env bash
# Runs every test: the Bazel py_test targets, then the same files under pytest (whose summary
# line closes the output).
# Needs KERAS_SUBSET_DATA_DIR (see tools/setup.sh). Exits non-zero when a test fails or none ran.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${KERAS_SUBSET_DATA_DIR:?set KERAS_SUBSET_DATA_DIR to the folder tools/setup.sh filled (./data)}"
export KERAS_SUBSET_DATA_DIR=$(realpath "$KERAS_SUBSET_DATA_DIR")
bash tools/bazel_test.sh
python3 -m pytest -q tests "$@"
