#!/usr/bin/env bash
# CI entry point: run every Bazel test target offline.
#   bash tools/bazel_test.sh [extra `bazel test` flags, e.g. --nocache_test_results]
#   TEST_TARGETS=//:fast_tier bash tools/bazel_test.sh   (targets other than //...)
# Installs nothing but Debian's bazel-bootstrap(+source) when Bazel is missing,
# then runs `bazel test ${TEST_TARGETS:-//...} --test_output=errors` and exits with Bazel's code.
# Environment passed on to tests (see .bazelrc): PATH, HOME, PYENV_VERSION,
# KERAS_SUBSET_DATA_DIR, KERAS_BACKEND, TF_CPP_MIN_LOG_LEVEL, CUDA_VISIBLE_DEVICES.
set -euo pipefail

# Tests run with another working directory: make a relative data dir absolute
# (relative to the caller's directory) before leaving it.
if [[ -n "${KERAS_SUBSET_DATA_DIR:-}" && -d "${KERAS_SUBSET_DATA_DIR}" ]]; then
  KERAS_SUBSET_DATA_DIR="$(cd "${KERAS_SUBSET_DATA_DIR}" && pwd)"
  export KERAS_SUBSET_DATA_DIR
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v bazel >/dev/null 2>&1 || [[ ! -d /usr/src/bazel-bootstrap/mock_repos ]]; then
  sudo=""
  if [[ "$(id -u)" -ne 0 ]]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  ${sudo} apt-get install -y bazel-bootstrap bazel-bootstrap-source \
    || { ${sudo} apt-get update && ${sudo} apt-get install -y bazel-bootstrap bazel-bootstrap-source; }
fi

# Bazel's Python toolchain runs the first `python3` on PATH; it must be the
# interpreter that has the project's pip packages.
if ! python3 -c 'import importlib.util as u, sys
sys.exit(any(u.find_spec(m) is None for m in ("tensorflow", "keras", "numpy", "pytest")))'; then
  echo "tools/bazel_test.sh: python3 on PATH ($(command -v python3)) lacks tensorflow/keras/numpy/pytest" >&2
  exit 1
fi

set +e
read -r -a targets <<< "${TEST_TARGETS:-//...}"
bazel test --test_output=errors "$@" "${targets[@]}"
rc=$?
set -e
exit "${rc}"
