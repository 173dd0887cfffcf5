"""Rewrites the reports of finished benchmark folders from their run files.

A benchmark script writes `summary.json` and `summary.md` after every run it completes
(`report.write_reports`). When the summary itself gains a figure (e.g. the cross-seed paper
ratios of `stats.cross_seed_paper`), the committed folders are brought up to date by this
command rather than by re-running hours of training:

```
python3 -m benchmarks.resummarize docs/results/mnist docs/results/cifar10
```

It reads every complete `run_<name>_seed<k>.json` of a folder, takes the settings the summary
depends on (`SUMMARY_SETTINGS`) from the configuration of the most recently started run (that
of the last invocation, as the script would have), counts the `.partial.json` runs as planned
but missing, and writes `summary.json` and `summary.md` (not the plots, whose figures do not
change). Only the reasons for sweep values left out cannot be read from the runs: those of the
folder's former `summary.json` are kept. Like `stats` and `report`, it needs no TensorFlow.
"""

import argparse
import json
import os
import types

from benchmarks import report
from benchmarks import runlog
from benchmarks import stats

SUMMARY_SETTINGS = ("preset", "epochs", "target_tolerance", "plateau_tolerance",
                    "plateau_patience")
"""The `Config` fields `stats.summarize` reads."""


def _load(path):
    with open(path) as f:
        return json.load(f)


def load_records(folder):
    """Returns the complete run records of `folder`, in the reports' order
    (`stats.report_order`)."""
    return sorted((_load(p) for p in runlog.run_files(folder)), key=stats.report_order)


def summary_settings(records):
    """The settings of the most recently started run, as the `config` `stats.summarize` reads.

    Args:
        records: Run records, each with its `config` dict and `started` time.

    Returns:
        A namespace with the attributes `SUMMARY_SETTINGS`.
    """
    latest = max(records, key=lambda r: r["started"])["config"]
    return types.SimpleNamespace(**{key: latest[key] for key in SUMMARY_SETTINGS})


def resummarize(folder):
    """Rewrites `summary.json` and `summary.md` of `folder` from its run files.

    Args:
        folder: A benchmark output folder holding `run_*.json` files.

    Returns:
        The summary dict written.

    Raises:
        ValueError: when the folder holds no complete run.

    Example:

    >>> resummarize("docs/results/mnist")["runs_done"]  # doctest: +SKIP
    22
    """
    records = load_records(folder)
    if not records:
        raise ValueError(f"{folder} holds no complete run file (run_<name>_seed<k>.json).")
    partial = [_load(p) for p in runlog.run_files(folder, partial=True)]
    planned = [(r["run"], r["seed"]) for r in records + partial]
    old_path = os.path.join(folder, "summary.json")
    skipped = _load(old_path)["sweep"]["skipped"] if os.path.exists(old_path) else ()
    summary = stats.summarize(summary_settings(records), records, planned, skipped)
    runlog.write_json(old_path, summary)
    runlog.write_text(os.path.join(folder, "summary.md"), report.summary_markdown(summary))
    return summary


def parser():
    """The command line: `resummarize FOLDER...`."""
    p = argparse.ArgumentParser(prog="python3 -m benchmarks.resummarize",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", metavar="FOLDER", help="benchmark output folders")
    return p


def main(argv=None):
    """Re-summarizes every folder given; prints one line per folder."""
    for folder in parser().parse_args(argv).folders:
        summary = resummarize(folder)
        print(f"{folder}: summary.json and summary.md rewritten from {summary['runs_done']} runs")


if __name__ == "__main__":
    main()
