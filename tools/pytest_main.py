"""Entry point for Bazel py_test targets: run the given test file(s) under pytest.

Usage (set up by the BUILD macro): pytest_main.py tests/test_x.py [pytest args...]
Exits with pytest's exit code. Honours Bazel's test environment:
  XML_OUTPUT_FILE        -> --junitxml (per-test results in bazel-testlogs)
  TESTBRIDGE_TEST_ONLY   -> -k (so `bazel test --test_filter=EXPR` works; files
                            with no matching test then pass)
  TEST_TMPDIR            -> --basetemp (pytest tmp_path lives in Bazel's tmp)
"""
import os
import sys

import pytest


def main(argv):
    args = list(argv)
    # No .pytest_cache writes into the (read-only) runfiles tree.
    args += ["-p", "no:cacheprovider"]
    xml = os.environ.get("XML_OUTPUT_FILE")
    if xml:
        args.append("--junitxml=" + xml)
    test_filter = os.environ.get("TESTBRIDGE_TEST_ONLY")
    if test_filter:
        args += ["-k", test_filter]
    tmp = os.environ.get("TEST_TMPDIR")
    if tmp:
        args.append("--basetemp=" + os.path.join(tmp, "pytest"))
    code = int(pytest.main(args))
    # 5 = no tests collected: a failure for a plain run (empty or broken test
    # file), but fine when --test_filter deselected every test in this file.
    if code == pytest.ExitCode.NO_TESTS_COLLECTED and test_filter:
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
