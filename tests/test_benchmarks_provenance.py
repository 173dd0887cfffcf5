"""Tests of `benchmarks.provenance`: the digests of the code that made a run, and the summary
line that lists them when a folder's runs were made by different code."""

import os

import pytest

from benchmark_helpers import point as _point
from benchmark_helpers import record as _record
from benchmarks import provenance
from benchmarks import report
from benchmarks import stats
from benchmarks.config import Config

# Every test of this file is quick: all in the fast tier.
pytestmark = pytest.mark.fast


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def test_package_digest_follows_every_py_file_and_nothing_else(tmp_path):
    pkg = str(tmp_path / "pkg")
    _write(os.path.join(pkg, "a.py"), "x = 1\n")
    _write(os.path.join(pkg, "sub", "b.py"), "y = 2\n")
    _write(os.path.join(pkg, "notes.txt"), "one\n")
    first = provenance.package_digest(pkg)
    assert len(first) == provenance.DIGEST_LENGTH and int(first, 16) >= 0
    assert provenance.package_digest(pkg) == first
    # Not code: other files and the bytecode caches.
    _write(os.path.join(pkg, "notes.txt"), "two\n")
    _write(os.path.join(pkg, "__pycache__", "a.py"), "stale\n")
    assert provenance.package_digest(pkg) == first
    # Code: an edit in a subfolder, a renamed file, a new file.
    _write(os.path.join(pkg, "sub", "b.py"), "y = 3\n")
    edited = provenance.package_digest(pkg)
    assert edited != first
    os.rename(os.path.join(pkg, "a.py"), os.path.join(pkg, "c.py"))
    renamed = provenance.package_digest(pkg)
    assert renamed not in (first, edited)
    _write(os.path.join(pkg, "d.py"), "")
    assert provenance.package_digest(pkg) not in (first, edited, renamed)


def test_source_digest_covers_the_library_and_the_benchmarks():
    import keras_subset

    digest = provenance.source_digest()
    assert digest == {
        "keras_subset": provenance.package_digest(os.path.dirname(keras_subset.__file__)),
        "benchmarks": provenance.package_digest(os.path.dirname(provenance.__file__)),
    }
    assert digest["keras_subset"] != digest["benchmarks"]
    assert provenance.source_label({"source": digest}) == (
        f"{digest['keras_subset']}/{digest['benchmarks']}")
    assert provenance.source_label({}) == provenance.NOT_RECORDED


def test_summary_lists_the_code_of_its_runs_only_when_it_differs():
    points = [_point("initial", 0.0, 0, 0.0, 0.1), _point("train", 1.0, 1000, 1.0, 0.9)]
    new = {"keras_subset": "a" * 12, "benchmarks": "b" * 12}
    config = Config(dataset="x", epochs=1, output_dir="unused")
    same = [_record("conventional", "conventional", s, points, source=new) for s in (0, 1)]
    summary = stats.summarize(config, same)
    assert summary["sources"] == {
        f"{'a' * 12}/{'b' * 12}": ["conventional seed 0", "conventional seed 1"]}
    assert "versions of the code" not in report.summary_markdown(summary)

    mixed = [_record("conventional", "conventional", 0, points),  # made before digests
             _record("conventional", "conventional", 1, points, source=new),
             _record("conventional_b512", "conventional", 1, points, source=new),
             _record("conventional", "conventional", 2, points, source=new)]
    summary = stats.summarize(config, mixed)
    assert summary["sources"] == {
        provenance.NOT_RECORDED: ["conventional seed 0"],
        f"{'a' * 12}/{'b' * 12}": ["conventional seed 1", "conventional_b512 seed 1",
                                   "conventional seed 2"],
    }
    text = report.summary_markdown(summary)
    assert "made by 2 versions of the code" in text
    assert ("  - not recorded (runs made before the code recorded it, 2026-12-04): "
            "conventional (seed 0)") in text
    assert (f"  - `{'a' * 12}/{'b' * 12}`: conventional (seeds 1, 2), "
            "conventional_b512 (seed 1)") in text
