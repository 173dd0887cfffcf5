"""Prints one markdown table over several benchmark output folders.

Usage: `python3 -m benchmarks.overview docs/results/mnist docs/results/cifar10 ...
[--gap_plot=docs/results/gap_vs_q.png]`
Each folder holds the `summary.json` a benchmark script wrote; a folder without one (the
side scripts' folders, `docs/results/engine`) is skipped, saying so. Every run gets one row,
named by its folder (so `mnist_seconds` and `mnist_bf16` stay apart), with both frames of
`benchmarks.stats`: its cost and time to the paper target (`lbfgs_full`'s final test accuracy
minus the tolerance) over `lbfgs_full`'s, and to the user target (`conventional`'s minus the
tolerance) over the faster Adam run's; "n/a" where a folder has no such reference run.
"""

import argparse
import json
import os
import re
import sys

from benchmarks.report import _log_q_axis
from benchmarks.report import _pyplot
from benchmarks.report import cut_short_rows
from benchmarks.report import format_number
from benchmarks.report import size_cells

HEADER = (
    "| folder | run | Q | K | final test acc. (%) | paper: cost / lbfgs_full "
    "| paper: time / lbfgs_full | user: cost / fastest Adam | user: time / fastest Adam "
    "| total cost (epochs) | conv. acc. at that cost (%) |"
)


def _conventional_at(folder, seed, cost):
    """Test accuracy of the conventional run at its last point costing at most `cost`."""
    path = os.path.join(folder, f"run_conventional_seed{seed}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        points = json.load(f)["points"]
    reached = [p for p in points if p["evaluations"] <= cost]
    return reached[-1]["test_accuracy"] if reached else None


def _frame_ratio(run, frame, key):
    figures = run.get(frame)
    if figures is None and frame == "user" and "ttt_evaluations_ratio" in run:
        figures = run  # a summary written before the two frames: its ratios are the user frame's
    if figures is None:
        return "n/a"
    if figures[key]["mean"] is None:
        return "not reached"
    return format_number(figures[f"{key}_ratio"], missing="n/a")


def folder_name(folder):
    """The name a folder's rows and curves go by: its own name, e.g. `mnist_bf16`; a Q-curve
    width's with its dataset, e.g. `mnist/w4`."""
    parent, base = os.path.split(os.path.normpath(folder))
    if re.fullmatch(r"w\d+", base):
        return f"{os.path.basename(parent)}/{base}"
    return base


def load_summary(folder):
    """Returns the `summary.json` of `folder` as a dict, or `None` when it has none."""
    path = os.path.join(folder, "summary.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def rows(folder):
    """Yields the markdown rows of one benchmark folder (none without a `summary.json`)."""
    summary = load_summary(folder)
    if summary is None:
        return
    n = summary["train_examples"]
    name = folder_name(folder) + (f" ({summary['copies']} copies)" if summary.get("copies") else "")
    levelled = summary.get("levelled_off", {})
    for run in summary["runs"]:
        label = run["run"]
        if run["kind"] == "conventional":
            epochs = run.get("adam_epochs", summary["conventional_epochs"])
            label += f", {format_number(epochs, digits=1)} epochs"
        flag = levelled.get(run["run"])
        if flag is None and run["run"] == "conventional":
            flag = summary["conventional_levelled_off"]
        if flag is False:
            label += " (not levelled off)"
        conventional = run["kind"] == "conventional"
        same_cost = [_conventional_at(folder, s["seed"], s["total_evaluations"])
                     for s in run["per_seed"]]
        same_cost = ("—" if conventional or None in same_cost
                     else f"{100 * sum(same_cost) / len(same_cost):.2f}")
        q, k = size_cells(run, n)
        yield (
            f"| {name} | {label} | {q} | {k} "
            f"| {100 * run['final_test_accuracy']['mean']:.2f} "
            f"| {_frame_ratio(run, 'paper', 'ttt_evaluations')} "
            f"| {_frame_ratio(run, 'paper', 'ttt_seconds')} "
            f"| {_frame_ratio(run, 'user', 'ttt_evaluations')} "
            f"| {_frame_ratio(run, 'user', 'ttt_seconds')} "
            f"| {run['total_evaluations']['mean'] / n:.1f} | {same_cost} |"
        )


def plot_gap_vs_q(folders, path):
    """One figure of every folder's Q sweep: the test-accuracy gap of a subset at its
    minimum to `lbfgs_full` on the same (extended) set, against Q (log x; with fixed
    augmented copies Q counts them). Un-augmented sweeps solid, augmented dashed, one
    colour per dataset; a fit that the iteration cap ended before its minimum is a hollow
    marker off the curve. Returns the number of folders drawn."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    colours, drawn, qs, tolerance, any_cut = {}, 0, [], None, False
    for folder in folders:
        summary = load_summary(folder) or {"sweep": {"rows": []}}
        rows = [r for r in summary["sweep"]["rows"] if r["test_accuracy_gap_pp"]["mean"] is not None]
        cut = cut_short_rows(summary["sweep"]["rows"])
        if not rows and not cut:
            continue
        tolerance = summary["target_tolerance_pp"]
        colour = colours.setdefault(summary["dataset"], f"C{len(colours)}")
        copies = summary.get("copies", 0)
        label = folder_name(folder) + (f" ({copies} fixed augmented copies)" if copies else "")
        gaps = [r["test_accuracy_gap_pp"] for r in rows]
        ax.errorbar([r["ratio"] for r in rows], [g["mean"] for g in gaps],
                    yerr=[g["std"] or 0.0 for g in gaps], color=colour, marker="o", capsize=3,
                    ls="--" if copies else "-", label=label)
        # A fit the iteration cap ended before its minimum: a hollow marker, off the curve.
        ax.plot([r["ratio"] for r in cut], [r["cut_gap_pp"]["mean"] for r in cut], "o",
                mfc="none", color=colour, ms=8)
        any_cut = any_cut or bool(cut)
        qs += [r["ratio"] for r in rows + cut]
        drawn += 1
    ax.axhline(0.0, color="black", lw=0.8)
    if tolerance is not None:
        ax.axhline(-tolerance, color="gray", ls=":", lw=1, label=f"-{tolerance:g} pp")
    if any_cut:
        ax.plot([], [], "o", mfc="none", color="gray", ms=8,
                label="hollow: cut short of its minimum by the iteration cap")
    _log_q_axis(ax, sorted({round(q, 1 if q < 10 else 0) for q in qs}))  # 8 and 8.01: one tick
    ax.set_xlabel("overdetermination ratio Q = K*(1 + copies)*M/P of the subset (log)")
    ax.set_ylabel("test accuracy gap to lbfgs_full on the same set (pp)")
    ax.set_title("One subset fitted to its minimum, with and without augmented copies")
    if drawn:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn


def table(folders):
    """Returns the markdown table of every run of `folders` (header, rule, rows).

    Args:
        folders: Benchmark output folders; those without a `summary.json` add no row.

    Returns:
        The table as one string, without a final newline.

    Example:

    >>> print(table(["docs/results/mnist"]))  # doctest: +SKIP
    | folder | run | Q | K | ...
    """
    lines = [HEADER, "|---|---|---|---|---|---|---|---|---|---|---|"]
    for folder in folders:
        lines += rows(folder)
    return "\n".join(lines)


def parser():
    """The command line: `overview FOLDER... [--gap_plot=PATH]`."""
    p = argparse.ArgumentParser(prog="python3 -m benchmarks.overview",
                                description="One markdown table over benchmark output folders.")
    p.add_argument("folders", nargs="+", metavar="FOLDER",
                   help="benchmark output folders (one without summary.json is skipped)")
    p.add_argument("--gap_plot", metavar="PATH",
                   help="also draw every folder's Q sweep on one figure, written to PATH")
    return p


def main(argv=None):
    """Prints the table of the folders given; with `--gap_plot`, also writes the folders'
    Q sweeps on one figure (`plot_gap_vs_q`)."""
    args = parser().parse_args(argv)
    for folder in args.folders:
        if load_summary(folder) is None:
            print(f"{folder}: no summary.json (not a benchmark script's folder), skipped",
                  file=sys.stderr)
    print(table(args.folders))
    if args.gap_plot:
        drawn = plot_gap_vs_q(args.folders, args.gap_plot)
        print(f"\nWrote {args.gap_plot}: {drawn} sweep curves.")


if __name__ == "__main__":
    main()
