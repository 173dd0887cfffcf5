#!/usr/bin/env bash
# Runs every test once: `bazel test //...` (one py_test per tests/test_*.py, each running its
# file under pytest; the slow files in shards; two test processes at a time, see .bazelrc),
# then prints one closing line summed from Bazel's JUnit XML: `N passed, N failed, N skipped`.
#
#   bash tools/test.sh            the whole suite
#   bash tools/test.sh --fast     the fast tier: only the tests marked `fast` (pytest -m fast,
#                                 a few of every module), Bazel's //:fast_tier (two processes)
#   bash tools/test.sh [--fast] [more `bazel test` flags, e.g. --nocache_test_results]
#
# Needs KERAS_SUBSET_DATA_DIR (see tools/setup.sh). Exits non-zero when a test fails, a target
# fails (timeout, crash) or no test ran. Bazel reuses the results of unchanged targets; the
# closing line counts them too (pass --nocache_test_results to run everything again).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${KERAS_SUBSET_DATA_DIR:?set KERAS_SUBSET_DATA_DIR to the folder tools/setup.sh filled (./data)}"
export KERAS_SUBSET_DATA_DIR=$(realpath "$KERAS_SUBSET_DATA_DIR")

flags=()
export TEST_TARGETS=//...
for arg in "$@"; do
  if [[ "$arg" == "--fast" ]]; then
    TEST_TARGETS=//:fast_tier
  else
    flags+=("$arg")
  fi
done

bep=$(mktemp "${TMPDIR:-/tmp}/keras-subset-bep.XXXXXX.json")
trap 'rm -f "$bep"' EXIT
set +e
bash tools/bazel_test.sh --build_event_json_file="$bep" "${flags[@]}"
bazel_rc=$?
python3 tools/test_totals.py "$bep"
totals_rc=$?
set -e
if (( bazel_rc != 0 )); then exit "$bazel_rc"; fi
exit "$totals_rc"
