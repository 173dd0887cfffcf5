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

from benchmarks import provenance
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


def format_ratio(value, missing="not reached"):
    """Returns the text of a ratio in the docs' tables: 3 decimals below 1 (0.105 is not a
    tenth), 2 from 1 on; a statistic over seeds as "m ± s" (see `format_number`)."""
    mean = value["mean"] if isinstance(value, dict) else value
    return format_number(value, digits=3 if mean is not None and abs(mean) < 1 else 2,
                         missing=missing)


def markdown_table(header, rows):
    """Returns a markdown table as one string (no final newline).

    Args:
        header: The column titles.
        rows: The rows, each a list of cell texts as long as `header`.

    Example:

    >>> print(markdown_table(["a", "b"], [["1", "2"]]))
    | a | b |
    |---|---|
    | 1 | 2 |
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


FRAME_TEXT = {
    "paper": ("paper", "lbfgs_full"),
    "user": ("user", "fastest Adam"),
}


def _ratio(frame, key):
    """A frame's ratio of `key` ("ttt_evaluations" or "ttt_seconds") as text."""
    if frame[key]["mean"] is None:
        return "not reached"
    # Reached, but the baseline's time-to-target was 0 (its initial point already
    # met the target): the ratio is undefined.
    return format_number(frame[f"{key}_ratio"], 1.0, 3, missing="n/a")


def _frame_cells(run, frame_name, n):
    frame = run.get(frame_name)
    if frame is None:
        return ["n/a"] * 5
    return [
        format_number(frame["ttt_evaluations"], 1.0 / n, 3),
        format_number(frame["ttt_seconds"], 1.0, 1),
        _ratio(frame, "ttt_evaluations"),
        _ratio(frame, "ttt_seconds"),
        f"{frame['reached']}/{frame['seeds']}",
    ]


def size_cells(run, n):
    """The Q and K cells of a run: a range for progressive runs, "(all)" on the full set."""
    if run.get("first_subset_size"):
        return (f"{run['ratio']:.2f}→{run['last_ratio']:.2f}",
                f"{run['first_subset_size']:,d}→{run['subset_size']:,d}")
    if run["subset_size"]:
        return f"{run['ratio']:.2f}", f"{run['subset_size']:,d}"
    return f"{run['ratio']:.2f}", f"{n:,d} (all)"


def _levelled_cell(run):
    if run["kind"] not in ("conventional", "lbfgs_full"):
        return "—"
    return ", ".join("yes" if v else "**no**" for v in run["levelled_off"])


def _frame_lines(summary):
    """The bullet lines that define the two frames' targets and baselines."""
    tol = summary["target_tolerance_pp"]
    texts = {
        "paper": ("Paper frame", "lbfgs_full",
                  "ratios over `lbfgs_full`'s own cost and time to it"),
        "user": ("User frame", "conventional",
                 "ratios over the faster Adam run, the conventional run with the least "
                 "seconds to that target (per seed: {baselines}), its cost too"),
    }
    lines = []
    for frame, (title, reference, ratios) in texts.items():
        targets = summary["frames"][frame]
        if not targets:
            lines.append(f"- {title}: n/a (no `{reference}` run).")
            continue
        per_seed = ", ".join(f"{100 * v['target']:.2f}%" for v in targets.values())
        baselines = ", ".join(f"`{v['baseline']}`" for v in targets.values())
        lines.append(
            f"- **{title}**: target = `{reference}`'s final test accuracy minus {tol:g} pp "
            f"(per seed: {per_seed}); " + ratios.format(baselines=baselines) + "."
        )
    return lines


def _source_lines(summary):
    """Lines naming the code of the runs, when more than one version of it made them."""
    sources = summary.get("sources") or {}
    if len(sources) < 2:
        return []
    lines = [f"- **These runs were made by {len(sources)} versions of the code** (digests of "
             "the keras_subset/benchmarks sources, `benchmarks.provenance`; `--reuse` kept "
             "earlier runs): runs of different code may differ numerically."]
    for label, entries in sources.items():
        seeds = {}
        for entry in entries:
            name, _, seed = entry.rpartition(" seed ")
            seeds.setdefault(name, []).append(seed)
        runs = ", ".join(f"{name} (seed{'s' if len(s) > 1 else ''} {', '.join(s)})"
                         for name, s in seeds.items())
        code = (f"`{label}`" if label != provenance.NOT_RECORDED
                else "not recorded (runs made before the code recorded it, 2026-12-04)")
        lines.append(f"  - {code}: {runs}")
    return lines


def _levelled_lines(summary):
    lines = []
    tol, patience = summary["plateau_tolerance_pp"], summary["plateau_patience"]
    rule = f"no gain of {tol:g} pp over the best earlier point for {patience} points in a row"
    gains = summary["conventional_last_epoch_gain_pp"]
    if gains:
        gain_text = ", ".join(
            "n/a (1 epoch)" if g is None else f"{g:+.2f} pp" for g in gains.values()
        )
        if summary["conventional_levelled_off"]:
            lines.append(
                f"- The conventional run levelled off ({rule}, at its end); its last epoch "
                f"gained {gain_text} over its best earlier epoch."
            )
        else:
            lines.append(
                f"- **The conventional run has NOT levelled off**: it reached its cap of "
                f"{summary['conventional_epochs']} epochs before the stopping rule ({rule}) "
                f"held; last-epoch gain {gain_text}. Its final accuracy, the user target, is "
                "not its plateau: use more --epochs."
            )
    others = {k: v for k, v in summary["levelled_off"].items() if k != "conventional"}
    if others:
        lines.append(
            "- Levelled off at their end: "
            + ", ".join(f"`{k}` {'yes' if v else '**no**'}" for k, v in others.items())
            + (". **`lbfgs_full` has NOT levelled off**: the paper target is not its plateau; "
               "use more --lbfgs_full_iterations." if others.get("lbfgs_full") is False else ".")
        )
    return lines


def summary_markdown(summary):
    """Returns the markdown report of a summary dict: the runs in both frames,
    the stages of the progressive runs, the Q sweep."""
    n = summary["train_examples"]
    lines = [
        f"# {summary['dataset']}: subset pretraining, progressive subsets and full-set "
        "L-BFGS vs Adam",
        "",
        f"- Model `{summary['model']}`: P = {summary['parameters']:,d} trainable "
        f"parameters, M = {summary['outputs']} outputs; training set N = {n:,d} "
        f"(Q = N*M/P = {summary['q_full']:.2f}), test set {summary['test_examples']:,d}; "
        f"augmentation {'on' if summary['augment'] else 'off'}"
        + (f", the L-BFGS phases fit every example with {summary['copies']} fixed augmented "
           f"copies (Q of the extended set {summary['q_extended']:.2f}; Q, K and cost count "
           "the copies)" if summary.get("copies") else "")
        + f"; preset `{summary['preset']}`.",
        "- Cost: example-gradients (examples times forward+backward passes, L-BFGS "
        f"line-search evaluations included), shown in epochs of N = {n:,d}; the held-out "
        "checks' forward passes count as whole example-gradients (conservative: a forward "
        "pass costs about a third) and are also shown apart; seconds are training "
        "wall-clock time only (evaluations excluded).",
        *_frame_lines(summary),
        f"- Seeds: {', '.join(str(s) for s in summary['seeds'])}; mean ± sample std "
        "over seeds; a ratio is per seed, then averaged.",
    ]
    if summary["runs_missing"]:
        lines.append(
            f"- **Partial: this summary covers {summary['runs_done']} of "
            f"{summary['runs_planned']} planned runs** (the invocation is still running or "
            f"was cut short); not complete: {', '.join(summary['runs_missing'])}."
        )
    else:
        lines.append(f"- This summary covers all {summary['runs_planned']} planned runs.")
    lines += _source_lines(summary)
    lines += _levelled_lines(summary)
    low = [r["run"] for r in summary["runs"]
           if r["kind"] in ("subset", "sweep") and r["ratio"] <= 1]
    if low:
        lines.append(
            f"- Subset runs with Q <= 1 (not overdetermined; outside the claim): "
            f"{', '.join(low)}."
        )
    header = ["run", "Q", "K", "final test acc (%)"]
    for frame in ("paper", "user"):
        name, base = FRAME_TEXT[frame]
        header += [f"{name}: cost to target (epochs)", f"{name}: time to target (s)",
                   f"{name}: cost / {base}", f"{name}: time / {base}", f"{name}: reached"]
    header += ["total cost (epochs)", "total time (s)", "held-out forwards (epochs)",
               "levelled off"]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in summary["runs"]:
        q, k = size_cells(run, n)
        forwards = run["example_forwards"]
        cells = [
            run["run"], q, k,
            format_number(run["final_test_accuracy"], 100.0),
            *_frame_cells(run, "paper", n),
            *_frame_cells(run, "user", n),
            format_number(run["total_evaluations"], 1.0 / n, 3),
            format_number(run["total_seconds"], 1.0, 1),
            format_number(forwards, 1.0 / n, 3) if forwards["mean"] else "—",
            _levelled_cell(run),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Time to target: the first point at or above the target. 'not reached': the run "
        "never reached it. The claim under test predicts a ratio of 0.1 or less.",
        "",
    ]
    lines += _stage_lines(summary)
    lines += _sweep_lines(summary)
    return "\n".join(lines)


def _stage_lines(summary):
    """The per-stage table of the progressive runs (from the run records)."""
    rows = []
    for run in summary["runs"]:
        for entry in run["per_seed"]:
            for st in entry.get("stages") or []:
                rows.append("| " + " | ".join([
                    run["run"], str(entry["seed"]), str(st["stage"]), f"{st['size']:,d}",
                    f"{st['ratio']:.2f}", str(st["iterations"]), str(st["evaluations"]),
                    f"{st['loss']:.4f}",
                    "—" if st["held_out_loss"] is None else f"{st['held_out_loss']:.4f}",
                    f"{st['held_out_size']:,d}",
                    f"{st['example_gradients'] / summary['train_examples']:.3f}",
                    f"{st['training_seconds']:.1f}",
                    st["reason"],
                ]) + " |")
    if not rows:
        return []
    return [
        "## Stages of the L-BFGS pretrain runs (lbfgs_full, progressive, paper)",
        "",
        "| run | seed | stage | K | Q | iterations | evaluations | subset loss | held-out loss "
        "| held-out K | cost (epochs) | time (s) | reason |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def _cut_short(row):
    """What the gap cell adds for the seeds whose subset fit a cap cut short of its minimum
    (`stats.subset_phase_at_minimum`): their count and gap, which the mean leaves out."""
    cut = row.get("seeds_cut_short", 0)
    if not cut:
        return ""
    return (f" ({cut} seed{'s' if cut > 1 else ''} not at the minimum (a cap or a stall), left out: "
            f"{format_number(row['cut_gap_pp'], missing='n/a')})")


def _sweep_lines(summary):
    """The Q-sweep table: single subsets fitted to their minimum vs `lbfgs_full`."""
    sweep = summary["sweep"]
    if not sweep["rows"] and not sweep["skipped"]:
        return []
    tol = summary["target_tolerance_pp"]
    lines = [
        "## Q sweep: one subset fitted to its minimum, no fine-tuning",
        "",
        "Training loss and accuracy over the whole training set; gaps to `lbfgs_full`'s final "
        "point (test accuracy in pp, negative: worse; training loss, positive: higher).",
        "",
        "| run | Q | K | test acc (%) | full training loss | full training acc (%) "
        f"| test acc gap (pp) | training loss gap | within {tol:g} pp |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    smallest = sweep["smallest_q_within_tolerance"]
    for row in sweep["rows"]:
        within = "—" if row["test_accuracy_gap_pp"]["mean"] is None else (
            "yes" if row["within_tolerance"] else "no")
        if row["ratio"] == smallest:
            within = "**yes (smallest Q)**"
        name = row["run"] + (" (subset phase)" if row.get("kind") == "paper" else "")
        lines.append("| " + " | ".join([
            name, f"{row['ratio']:.2f}", f"{row['subset_size']:,d}",
            format_number(row["test_accuracy"], 100.0, missing="—"),
            format_number(row["full_train_loss"], 1.0, 4, missing="—"),
            format_number(row["full_train_accuracy"], 100.0, missing="—"),
            format_number(row["test_accuracy_gap_pp"], missing="n/a") + _cut_short(row),
            format_number(row["train_loss_gap"], 1.0, 4, missing="n/a"),
            within,
        ]) + " |")
    ref = sweep["reference"]
    if ref:
        lines.append("| " + " | ".join([
            "lbfgs_full (reference)", f"{ref['ratio']:.2f}", f"{summary['train_examples']:,d}",
            format_number(ref["test_accuracy"], 100.0),
            format_number(ref["full_train_loss"], 1.0, 4, missing="—"),
            format_number(ref["full_train_accuracy"], 100.0, missing="—"),
            "0", "0", "—",
        ]) + " |")
    lines.append("")
    if not ref:
        lines.append("No `lbfgs_full` run: no gaps.")
    elif smallest is None:
        lines.append(f"No Q of the sweep is within {tol:g} pp of `lbfgs_full`'s test accuracy.")
    else:
        lines.append(
            f"Smallest Q whose mean test-accuracy gap is within {tol:g} pp: **{smallest:.3g}**."
        )
    for text in sweep["skipped"]:
        lines.append(f"- Skipped {text}.")
    lines.append("")
    return lines


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy_vs_cost(summary, records, path):
    """Plots test accuracy against cumulative cost (in epochs of N) and
    training seconds, both log x, for every run and seed: the two frames'
    targets as horizontal lines, stage ends (and subset-phase ends) marked,
    sweep runs as crosses at their final point."""
    plt = _pyplot()
    n = summary["train_examples"]
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    names = [run["run"] for run in summary["runs"] if run["kind"] != "sweep"]
    cmap = plt.cm.tab10 if len(names) <= 10 else plt.cm.tab20
    colors = {name: cmap(i % cmap.N) for i, name in enumerate(names)}
    for ax, key, scale, label in (
        (axes[0], "evaluations", 1.0 / n, "cost (epochs of N example-gradients, log)"),
        (axes[1], "seconds", 1.0, "training seconds (log)"),
    ):
        labelled = set()
        sweep_x, sweep_y = [], []
        for r in records:
            pts = [p for p in r["points"] if p[key] > 0]
            if not pts:
                continue
            xs = [scale * p[key] for p in pts]
            ys = [100.0 * p["test_accuracy"] for p in pts]
            name = r["run"]
            if r["kind"] == "sweep":
                sweep_x.append(xs[-1])
                sweep_y.append(ys[-1])
                continue
            ax.plot(xs, ys, "-", marker=".", ms=3, color=colors[name], alpha=0.9,
                    lw=1.2, label=None if name in labelled else name)
            labelled.add(name)
            ends = [i for i, p in enumerate(pts) if p.get("stage_end")]
            subset_ends = [i for i, p in enumerate(pts) if p["phase"] == "subset"][-1:]
            for i in ends + subset_ends:
                ax.plot([xs[i]], [ys[i]], "D" if i in ends else "o", ms=5,
                        color=colors[name], mfc="white" if i in ends else None)
        if sweep_x:
            ax.plot(sweep_x, sweep_y, "x", color="black", ms=6, label="sweep (one subset, Q)")
        for frame, style in (("paper", ":"), ("user", "--")):
            targets = [v["target"] for v in summary["frames"][frame].values()]
            if targets:
                ax.axhline(100.0 * float(np.mean(targets)), color="gray", ls=style, lw=1,
                           label=f"{frame} target")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy (%)")
        # Every run's end and both targets in view; the early points may fall below.
        ends = [100.0 * r["points"][-1]["test_accuracy"] for r in records]
        ends += [100.0 * v["target"] for f in summary["frames"].values() for v in f.values()]
        shown = [100.0 * p["test_accuracy"] for r in records for p in r["points"] if p[key] > 0]
        if shown:
            ax.set_ylim(max(0.0, min(ends) - 3.0), min(100.0, max(shown) + 1.0))
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    fig.suptitle(
        f"{summary['dataset']}: test accuracy vs training cost "
        "(open diamonds: stage ends; dots: end of a subset phase)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _log_q_axis(ax, qs):
    """A log x axis of Q with ticks at the values plotted, written plainly."""
    ax.set_xscale("log")
    if qs:
        ax.set_xticks(sorted(set(qs)))
        ax.set_xticklabels([f"{q:.3g}" for q in sorted(set(qs))])
        ax.minorticks_off()
    ax.set_xlabel("overdetermination ratio Q = K*M/P of the subset (log)")
    ax.grid(True, which="both", alpha=0.3)


def cut_short_rows(rows):
    """The sweep rows (`stats.sweep_summary`) with no fit at its minimum but a cut-short one: the
    plots draw their gap as a hollow marker, apart from the curve."""
    return [r for r in rows if r["test_accuracy_gap_pp"]["mean"] is None
            and r.get("cut_gap_pp", {"mean": None})["mean"] is not None]


def plot_gap_vs_q(summary, path):
    """Plots the Q sweep: the test-accuracy gap (pp) and the full training loss
    gap to `lbfgs_full` against Q (log x), with the -tolerance line; beside it,
    when there are subset runs, their final gap to the conventional run after
    fine-tuning."""
    plt = _pyplot()
    tol = summary["target_tolerance_pp"]
    subset_runs = [r for r in summary["runs"] if r["kind"] == "subset"]
    panels = 3 if subset_runs else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.5))
    rows = [r for r in summary["sweep"]["rows"] if r["test_accuracy_gap_pp"]["mean"] is not None]
    cut = cut_short_rows(summary["sweep"]["rows"])
    qs = [r["ratio"] for r in rows + cut]
    for ax, key, ylabel in (
        (axes[0], "test_accuracy_gap_pp", "test accuracy gap to lbfgs_full (pp)"),
        (axes[1], "train_loss_gap", "full training loss gap to lbfgs_full"),
    ):
        points = [(q, r[key]) for q, r in zip(qs, rows) if r[key]["mean"] is not None]
        if points:
            ax.errorbar([q for q, _ in points], [v["mean"] for _, v in points],
                        yerr=[v["std"] or 0.0 for _, v in points], marker="o", capsize=3,
                        label="sweep: one subset at its minimum")
        else:
            ax.text(0.5, 0.5, "no subset fit at its minimum\nwith an lbfgs_full reference", ha="center",
                    va="center", transform=ax.transAxes)
        ax.axhline(0.0, color="black", lw=0.8)
        _log_q_axis(ax, qs)
        ax.set_ylabel(ylabel)
    if cut:
        axes[0].plot([r["ratio"] for r in cut], [r["cut_gap_pp"]["mean"] for r in cut], "o",
                     mfc="none", color="C0", label="not at its minimum: cut short by a cap, or stalled")
    axes[0].axhline(-tol, color="gray", ls="--", lw=1, label=f"-{tol:g} pp")
    smallest = summary["sweep"]["smallest_q_within_tolerance"]
    if smallest is not None:
        axes[0].axvline(smallest, color="green", ls=":", lw=1,
                        label=f"smallest Q within {tol:g} pp: {smallest:.3g}")
    axes[0].legend(fontsize=8)
    axes[0].set_title("test accuracy gap vs Q")
    axes[1].set_title("training loss (whole set) gap vs Q")
    if subset_runs:
        ax = axes[2]
        for opt in dict.fromkeys(r["optimizer"] for r in subset_runs):
            runs = sorted((r for r in subset_runs if r["optimizer"] == opt),
                          key=lambda r: r["ratio"])
            runs = [r for r in runs if r["gap_pp"]["mean"] is not None]
            if runs:
                ax.errorbar([r["ratio"] for r in runs], [r["gap_pp"]["mean"] for r in runs],
                            yerr=[r["gap_pp"]["std"] or 0.0 for r in runs], marker="o",
                            capsize=3, label=f"subset {opt} + fine-tuning")
        ax.axhline(0.0, color="black", lw=0.8)
        ax.axhline(-tol, color="gray", ls="--", lw=1, label=f"-{tol:g} pp (user target)")
        _log_q_axis(ax, [r["ratio"] for r in subset_runs])
        ax.set_ylabel("final test accuracy gap to conventional (pp)")
        ax.set_title("subset runs after fine-tuning")
        ax.legend(fontsize=8)
    fig.suptitle(f"{summary['dataset']}: the Q sweep")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_reports(config, records, planned=None, skipped=()):
    """Writes `summary.json`, `summary.md` and the two plots, each atomically;
    returns the summary dict.

    Args:
        config: The `Config`.
        records: The complete run records so far.
        planned: `(run name, seed)` of every planned run (see
            `stats.summarize`).
        skipped: Why sweep values were left out, in words.
    """
    summary = stats.summarize(config, records, planned, skipped)
    out = config.output_dir
    runlog.write_json(os.path.join(out, "summary.json"), summary)
    runlog.write_text(os.path.join(out, "summary.md"), summary_markdown(summary))
    with runlog.atomic_file(os.path.join(out, "accuracy_vs_cost.png")) as tmp:
        plot_accuracy_vs_cost(summary, records, tmp)
    with runlog.atomic_file(os.path.join(out, "gap_vs_q.png")) as tmp:
        plot_gap_vs_q(summary, tmp)
    return summary
