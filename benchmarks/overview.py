"""Prints one markdown table over several benchmark output folders (the README's Results).

Usage: `python -m benchmarks.overview docs/results/mnist docs/results/cifar10 ...`
Each folder holds the `summary.json` a benchmark script wrote.
"""

import json
import os
import sys

from benchmarks.report import format_number


def _conventional_at(folder, seed, cost):
    """Test accuracy of the conventional run at its last point costing at most `cost`."""
    with open(os.path.join(folder, f"run_conventional_seed{seed}.json")) as f:
        points = json.load(f)["points"]
    reached = [p for p in points if p["evaluations"] <= cost]
    return reached[-1]["test_accuracy"] if reached else None


def rows(folder):
    """Yields the markdown rows of one benchmark folder."""
    with open(os.path.join(folder, "summary.json")) as f:
        summary = json.load(f)
    n = summary["train_examples"]
    name = summary["dataset"] + (" + aug." if summary["augment"] else "")
    levelled = "" if summary["conventional_levelled_off"] else " (not levelled off)"
    for run in summary["runs"]:
        conventional = run["kind"] == "conventional"
        label = f"conventional, {summary['conventional_epochs']} epochs{levelled}" if conventional else run["run"]
        same_cost = [_conventional_at(folder, s["seed"], s["total_evaluations"]) for s in run["per_seed"]]
        same_cost = "—" if conventional or None in same_cost else f"{100 * sum(same_cost) / len(same_cost):.2f}"
        yield (
            f"| {name} | {label} | {run['ratio']:.1f} | {run['subset_size'] or n:,} "
            f"| {100 * run['final_test_accuracy']['mean']:.2f} | {format_number(run['gap_pp']['mean'])} "
            f"| {format_number(run['ttt_evaluations_ratio']['mean'])} | {format_number(run['ttt_seconds_ratio']['mean'])} "
            f"| {run['total_evaluations']['mean'] / n:.1f} | {same_cost} |"
        )


def main(folders):
    print(
        "| dataset | run | Q | K | final test acc. (%) | gap (pp) | cost to target / conv. "
        "| time to target / conv. | total cost (epochs) | conv. acc. at that cost (%) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for folder in folders:
        for row in rows(folder):
            print(row)


if __name__ == "__main__":
    main(sys.argv[1:])
