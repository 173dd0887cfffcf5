"""Helpers shared by the `tests/test_benchmarks_*.py` files.

The tests that read real data need the local data folder named by the
environment variable `KERAS_SUBSET_DATA_DIR` holding `mnist.npz`,
`cifar10.npz` and `cifar100.npz` (see `benchmarks/README.md`). Without it they
fail, saying so.
"""

import ast
import os

import pytest

from benchmarks import datasets

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def data_dir(*files):
    """The local data folder, failing the test when it or one of `files` is missing."""
    folder = os.environ.get(datasets.ENV_VAR)
    if not folder:
        pytest.fail(
            f"The environment variable {datasets.ENV_VAR} is not set: it must name "
            "a folder holding mnist.npz, cifar10.npz and cifar100.npz "
            "(keras.datasets layout); see benchmarks/README.md, section Data."
        )
    for name in files:
        if not os.path.exists(os.path.join(folder, name)):
            pytest.fail(
                f"{name} is missing from {datasets.ENV_VAR}={folder}; see "
                "benchmarks/README.md, section Data, for how to get it."
            )
    return folder


def point(phase, epoch, evaluations, seconds, accuracy):
    """A hand-made point of a run record (the fields `benchmarks.stats` reads)."""
    return {"phase": phase, "phase_epoch": epoch, "evaluations": evaluations,
            "seconds": seconds, "test_accuracy": accuracy, "test_loss": 1.0}


def record(run, kind, seed, points, **extra):
    """A hand-made run record of N = 1,000 training examples, with `points`."""
    data = {"run": run, "kind": kind, "seed": seed, "points": points, "complete": True,
            "subset": None, "q_full": 10.0, "dataset": "x", "model": "m", "parameters": 100,
            "outputs": 10, "train_examples": 1000, "test_examples": 100, "augment": False,
            "phases": []}
    data.update(extra)
    return data


def _call_name(node):
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)


def source_flags(source, module):
    """Returns `(literal flag names, modules whose define_flags() the source calls)`.

    Args:
        source: A module's Python source.
        module: Its name (a bare `define_flags()` call means its own).
    """
    names, groups = set(), set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = _call_name(node)
        first = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
        if name and name.startswith("DEFINE") and isinstance(first, str):
            names.add(first)
        elif name == "add_argument" and isinstance(first, str) and first.startswith("--"):
            names.add(first[2:])
        elif name == "define_flags":
            owner = node.func.value.id if isinstance(node.func, ast.Attribute) else module
            groups.add(owner)
    return names, groups
