"""Reports of a benchmark: the markdown table, the plots, and the number formatter.

`write_reports` writes, in the output folder, `summary.json` (the dict of
`stats.summarize`), `summary.md` (`summary_markdown`), `accuracy_vs_cost.png`
and `gap_vs_q.png`. `format_number` is the one formatter of numbers in the
reports, `benchmarks.overview`'s table included. Like `stats`, this module
imports neither TensorFlow nor Keras nor absl, so that the reports and the
overview can be made anywhere.
"""

import os

import numpy as np

from benchmarks import runlog
from benchmarks import stats


def format_number(value, scale=1.0, digits=2, suffix="", missing="not reached"):
    """Returns the text of a number in the reports.

    Args:
        value: A number, `None`, or a statistic over seeds `{"mean": m,
            "std": s}` (shown as "m ± s"; the std is left out when it is
            `None`).
        scale: Factor applied to the value (and std) before formatting.
        digits: Decimals.
        suffix: Text appended to the number.
        missing: Text shown when the value (or the mean) is `None`.
    """
    if isinstance(value, dict):
        mean, std = value["mean"], value["std"]
    else:
        mean, std = value, None
    if mean is None:
        return missing
    text = f"{mean * scale:.{digits}f}"
    if std is not None:
        text += f" ± {std * scale:.{digits}f}"
    return text + suffix


def _ratio(run, key):
    if run["kind"] != "subset":
        return "1"
    if run[key]["mean"] is None:
        return "not reached"
    # Reached, but the conventional run's time-to-target was 0 (its initial
    # point already met the target): the ratio is undefined.
    return format_number(run[f"{key}_ratio"], 1.0, 3, missing="n/a")


def summary_markdown(summary):
    """Returns the markdown report of a summary dict."""
    n = summary["train_examples"]
    lines = [
        f"# {summary['dataset']}: subset pretraining vs conventional training",
        "",
        f"- Model `{summary['model']}`: P = {summary['parameters']:,d} trainable "
        f"parameters, M = {summary['outputs']} outputs; training set N = {n:,d} "
        f"(Q = N*M/P = {summary['q_full']:.2f}), test set {summary['test_examples']:,d}; "
        f"augmentation {'on' if summary['augment'] else 'off'}; preset "
        f"`{summary['preset']}`.",
        "- Cost: example-gradients (examples times forward+backward passes, L-BFGS "
        f"line-search evaluations included), shown in epochs of N = {n:,d}; seconds "
        "are training wall-clock time only (evaluations excluded).",
        f"- Target per seed: conventional final test accuracy minus "
        f"{summary['target_tolerance_pp']:g} pp. Seeds: "
        f"{', '.join(str(s) for s in summary['targets'])}; mean ± sample std over seeds.",
    ]
    if summary["runs_missing"]:
        lines.append(
            f"- **Partial: this summary covers {summary['runs_done']} of "
            f"{summary['runs_planned']} planned runs** (the invocation is still running or "
            f"was cut short); not complete: {', '.join(summary['runs_missing'])}."
        )
    else:
        lines.append(f"- This summary covers all {summary['runs_planned']} planned runs.")
    gains = summary["conventional_last_epoch_gain_pp"]
    gain_text = ", ".join(
        "n/a (1 epoch)" if g is None else f"{g:+.2f} pp" for g in gains.values()
    )
    if summary["conventional_levelled_off"]:
        lines.append(
            f"- The conventional run levelled off: its last epoch gained {gain_text} "
            f"(< {summary['plateau_tolerance_pp']:g} pp) over its best earlier epoch."
        )
    else:
        lines.append(
            f"- **The conventional run has NOT levelled off** (last-epoch gain "
            f"{gain_text}, threshold {summary['plateau_tolerance_pp']:g} pp, "
            f"{summary['conventional_epochs']} epochs): its final accuracy, the "
            "target, is not its plateau; time-to-target ratios are not a fair "
            "test of the claim. Use more --epochs."
        )
    low = [r["run"] for r in summary["runs"] if r["kind"] == "subset" and r["ratio"] <= 1]
    if low:
        lines.append(
            f"- Subset runs with Q <= 1 (not overdetermined; outside the claim): "
            f"{', '.join(low)}."
        )
    lines += [
        "",
        "| run | subset opt. | Q | K | final test acc (%) | gap (pp) | cost to target "
        "(epochs) | time to target (s) | ratio (cost) | ratio (time) | reached | total cost "
        "(epochs) | total time (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in summary["runs"]:
        is_subset = run["kind"] == "subset"
        lines.append(
            "| "
            + " | ".join([
                run["run"],
                run["optimizer"] if is_subset else "—",
                f"{run['ratio']:.2f}",
                f"{run['subset_size']:,d}" if is_subset else f"{n:,d} (all)",
                format_number(run["final_test_accuracy"], 100.0),
                format_number(run["gap_pp"]),
                format_number(run["ttt_evaluations"], 1.0 / n, 3),
                format_number(run["ttt_seconds"], 1.0, 1),
                _ratio(run, "ttt_evaluations"),
                _ratio(run, "ttt_seconds"),
                f"{run['reached_target']}/{len(run['seeds'])}",
                format_number(run["total_evaluations"], 1.0 / n, 3),
                format_number(run["total_seconds"], 1.0, 1),
            ])
            + " |"
        )
    lines += [
        "",
        "Ratios are per seed (subset run over conventional run, time-to-target), "
        "then averaged; a ratio of 0.1 or less is what the claim under test "
        "predicts. 'not reached': the run never reached the target.",
        "",
    ]
    return "\n".join(lines)


def plot_accuracy_vs_cost(summary, records, path):
    """Plots test accuracy against cumulative cost (example-gradients and
    seconds) for every run and seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    names = [run["run"] for run in summary["runs"]]
    colors = {name: plt.cm.tab10(i % 10) for i, name in enumerate(names)}
    for ax, key, label in (
        (axes[0], "evaluations", "cumulative example-gradients (log)"),
        (axes[1], "seconds", "cumulative training seconds (log)"),
    ):
        labelled = set()
        for r in records:
            pts = [p for p in r["points"] if p[key] > 0]
            if not pts:
                continue
            xs = [p[key] for p in pts]
            ys = [100.0 * p["test_accuracy"] for p in pts]
            name = r["run"]
            ax.plot(xs, ys, "-", marker=".", ms=4, color=colors[name], alpha=0.9,
                    lw=1.3, label=None if name in labelled else name)
            labelled.add(name)
            ends = [p for p in pts if p["phase"] == "subset"]
            if ends:
                ax.plot([ends[-1][key]], [100.0 * ends[-1]["test_accuracy"]], "o",
                        color=colors[name])
        targets = list(summary["targets"].values())
        if targets:
            ax.axhline(100.0 * float(np.mean(targets)), color="gray", ls="--", lw=1,
                       label="target")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy (%)")
        shown = [100.0 * p["test_accuracy"] for r in records for p in r["points"]
                 if p[key] > 0]
        if shown:
            ax.set_ylim(max(0.0, min(shown) - 2.0), min(100.0, max(shown) + 1.0))
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"{summary['dataset']}: test accuracy vs training cost "
        f"(dots: end of subset phase)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_gap_vs_q(summary, path):
    """Plots the final accuracy gap to the conventional run against Q."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    subset_runs = [r for r in summary["runs"] if r["kind"] == "subset"]
    # One line per subset optimizer, in the order of the runs (--subset_optimizer's).
    for opt in dict.fromkeys(r["optimizer"] for r in subset_runs):
        runs = sorted((r for r in subset_runs if r["optimizer"] == opt),
                      key=lambda r: r["ratio"])
        runs = [r for r in runs if r["gap_pp"]["mean"] is not None]
        if not runs:
            continue
        ax.errorbar(
            [r["ratio"] for r in runs],
            [r["gap_pp"]["mean"] for r in runs],
            yerr=[r["gap_pp"]["std"] or 0.0 for r in runs],
            marker="o", capsize=3, label=f"subset {opt} + fine-tuning",
        )
    if not subset_runs:
        ax.text(0.5, 0.5, "no subset runs", ha="center", va="center",
                transform=ax.transAxes)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.axhline(-summary["target_tolerance_pp"], color="gray", ls="--", lw=1,
               label=f"-{summary['target_tolerance_pp']:g} pp (target)")
    ax.set_xscale("log")
    ax.set_xlabel("overdetermination ratio Q = K*M/P of the subset (log)")
    ax.set_ylabel("final test accuracy gap to conventional (pp)")
    ax.set_title(f"{summary['dataset']}: final accuracy gap vs Q")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_reports(config, records, planned=None):
    """Writes `summary.json`, `summary.md` and the two plots, each atomically;
    returns the summary dict.

    Args:
        config: The `Config`.
        records: The complete run records so far.
        planned: `(run name, seed)` of every planned run (see
            `stats.summarize`).
    """
    summary = stats.summarize(config, records, planned)
    out = config.output_dir
    runlog.write_json(os.path.join(out, "summary.json"), summary)
    runlog.write_text(os.path.join(out, "summary.md"), summary_markdown(summary))
    with runlog.atomic_file(os.path.join(out, "accuracy_vs_cost.png")) as tmp:
        plot_accuracy_vs_cost(summary, records, tmp)
    with runlog.atomic_file(os.path.join(out, "gap_vs_q.png")) as tmp:
        plot_gap_vs_q(summary, tmp)
    return summary
