"""Entry point for Bazel py_test targets: run the given test file(s) under pytest.

Usage (set up by the BUILD macro): pytest_main.py tests/test_x.py [pytest args...]
Exits with pytest's exit code. Honours Bazel's test environment:
  XML_OUTPUT_FILE        -> --junitxml (per-test results in bazel-testlogs, which
                            tools/test.sh sums into its closing line)
  TESTBRIDGE_TEST_ONLY   -> -k (so `bazel test --test_filter=EXPR` works; files
                            with no matching test then pass)
  TEST_TOTAL_SHARDS,     -> this shard runs every TEST_TOTAL_SHARDS-th test of the
  TEST_SHARD_INDEX          file, starting at TEST_SHARD_INDEX (BUILD's shard_count)
  TEST_TMPDIR            -> --basetemp (pytest tmp_path lives in Bazel's tmp)
A `-m EXPR` among the arguments (tools/test.sh --fast passes `-m fast` with
--test_arg) may select no test of a file or shard; that run passes too.
"""
import os
import sys

import pytest


class _Shard:
    """Keeps the tests of one Bazel shard: test i of the file when i % total == index."""

    def __init__(self, index, total):
        self.index, self.total = index, total

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config, items):
        kept = [item for i, item in enumerate(items) if i % self.total == self.index]
        others = [item for i, item in enumerate(items) if i % self.total != self.index]
        if others:
            config.hook.pytest_deselected(items=others)
        items[:] = kept


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
    plugins = []
    total = int(os.environ.get("TEST_TOTAL_SHARDS", "0") or 0)
    if total > 1:
        # Tell Bazel this runner shards (else it fails a sharded target).
        status = os.environ.get("TEST_SHARD_STATUS_FILE")
        if status:
            open(status, "a").close()
        plugins.append(_Shard(int(os.environ.get("TEST_SHARD_INDEX", "0")), total))
    code = int(pytest.main(args, plugins=plugins))
    # 5 = no tests collected: a failure for a plain run (empty or broken test
    # file), but fine when a filter (--test_filter, -m) or the shard left none
    # of this file's tests. tools/test.sh fails a run in which no test ran at all.
    if code == pytest.ExitCode.NO_TESTS_COLLECTED and (test_filter or "-m" in args or plugins):
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
