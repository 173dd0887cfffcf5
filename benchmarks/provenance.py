"""Which code made a benchmark run: digests of the sources, recorded in every run.

`--reuse` keeps the complete runs of earlier invocations whose configuration matches this
one's, but the code that made them may have changed since: on CIFAR-10 a change of the
library between two commits moved L-BFGS runs of the same configuration by 0.4 to 0.8 pp
(docs/results_no_augmentation.md, "Caveats"). So every run record carries `source_digest()`, the
runner says when it reuses a run made by other code, and `summary.md` lists the code of its
runs when they differ (`stats.summarize`, `report.summary_markdown`).

A digest covers every `.py` file of the package, names and bytes, so any edit changes it, a
docstring's too: a different digest says "other code", not "other numbers".
"""

import functools
import hashlib
import os

DIGEST_LENGTH = 12
"""Hex digits kept of a package's SHA-256 (48 bits: no collision among a project's versions)."""

NOT_RECORDED = "not recorded"
"""How a summary names the code of runs recorded before digests existed (2026-12-04)."""


def package_digest(folder):
    """Returns the digest of the `.py` files under `folder` (subfolders too).

    Args:
        folder: A package's directory.

    Returns:
        The first `DIGEST_LENGTH` hex digits of the SHA-256 over every `.py` file's path
        relative to `folder` and its bytes, in sorted path order (`__pycache__` skipped).

    Example:

    >>> package_digest("keras_subset")  # doctest: +SKIP
    '3f9a0c41b2d7'
    """
    paths = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        paths += [os.path.join(root, f) for f in files if f.endswith(".py")]
    sha = hashlib.sha256()
    for path in sorted(paths, key=lambda p: os.path.relpath(p, folder)):
        name = os.path.relpath(path, folder).replace(os.sep, "/")
        with open(path, "rb") as f:
            body = f.read()
        sha.update(f"{name}\0{len(body)}\0".encode())
        sha.update(body)
    return sha.hexdigest()[:DIGEST_LENGTH]


@functools.lru_cache(maxsize=None)
def source_digest():
    """Returns `{"keras_subset": digest, "benchmarks": digest}` of the code running now.

    Computed once per process (the sources a process imported do not change under it).
    """
    import keras_subset  # here, so that reading records (`source_label`) needs no TensorFlow

    return {
        "keras_subset": package_digest(os.path.dirname(os.path.abspath(keras_subset.__file__))),
        "benchmarks": package_digest(os.path.dirname(os.path.abspath(__file__))),
    }


def source_label(record):
    """Names the code that made a run `record`: `"<keras_subset>/<benchmarks>"` digests, or
    `NOT_RECORDED` for a record made before digests existed."""
    source = record.get("source")
    if not source:
        return NOT_RECORDED
    return f"{source['keras_subset']}/{source['benchmarks']}"
