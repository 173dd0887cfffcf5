"""The Q-curve's summary, table and figure, from the per-width summaries `benchmarks.q_curve` wrote.

`load(root, dataset)` reads `<root>/<dataset>/w<width>/summary.json` of every
width and returns the curve: one row per width, ordered by Q_full, with

- the reference: `lbfgs_full`'s final test accuracy, whether it levelled off
  (every seed), its cost to its target;
- per route (`progressive`, `progressive_adam`, each `paper_q<Q>`): the
  paper-frame cost ratio (to `lbfgs_full`'s target, over its cost to it) and the
  user-frame time ratio (to Adam's target, over the faster Adam's seconds), each
  with its seeds, mean, min and max, and how many seeds reached the target;
- the best paper route (the `paper_q<Q>` of least mean paper-frame ratio among
  those that reached the target in every seed), Q* (the sweep's smallest Q within
  the tolerance, from the paper runs' subset phases) and the bound Q_full / Q*;
- Adam's own paper-frame ratio and the best L-BFGS route in the user frame;
- the gap's trend (`gap_trend`): a power law through the sweep's test-accuracy
  gaps to `lbfgs_full`, and the Q where it reaches the tolerance.

Then the answers: the smallest Q_full from which a route saves half
(mean ratio <= 0.5 against a levelled reference), every Q_full where one
saves half and where one reaches a tenth (the curve need not be monotone), and
the smallest from which one beats Adam in seconds.

`write(root, dataset)` writes `q_curve.json` and `q_curve.md` beside the width
folders and redraws `<root>/q_curve.png` over every dataset found under `root`.
Like `stats`, this module imports neither TensorFlow nor Keras.
"""

import json
import math
import os
import re
import statistics

from benchmarks import report
from benchmarks import runlog
from benchmarks import stats

ROUTES = ("progressive", "progressive_adam")
"""The routes of every width besides the paper runs."""

L_BFGS_ROUTES = ("lbfgs_full", "progressive", "progressive_adam")
"""Routes compared with Adam in the user frame, besides the paper runs."""


def _width_folders(root, dataset):
    folder = os.path.join(root, dataset)
    if not os.path.isdir(folder):
        return []
    found = []
    for name in os.listdir(folder):
        m = re.fullmatch(r"w(\d+)", name)
        if m and os.path.exists(os.path.join(folder, name, "summary.json")):
            found.append((int(m.group(1)), os.path.join(folder, name)))
    return sorted(found)


def _ratios(run, frame, key):
    """`{seeds, values, mean, min, max, reached}` of a run's ratio `key` in `frame`, per seed."""
    seeds, values = [], []
    for entry in run["per_seed"]:
        if frame in entry:
            seeds.append(entry["seed"])
            values.append(entry[frame][key])
    got = [v for v in values if v is not None]
    mean, std = stats.mean_std(values) if len(got) == len(values) else (None, None)
    return {
        "seeds": seeds, "values": values, "reached": len(got), "mean": mean, "std": std,
        "min": min(got) if got else None, "max": max(got) if got else None,
    }


def _route(run):
    return {
        "run": run["run"],
        "ratio": run["ratio"],
        "paper": _ratios(run, "paper", "ttt_evaluations_ratio"),
        "user": _ratios(run, "user", "ttt_seconds_ratio"),
        "user_cost": _ratios(run, "user", "ttt_evaluations_ratio"),
    }


def _best(routes, frame):
    """The route of least mean ratio in `frame` among those that reached the target in every
    seed, or `None`."""
    full = [r for r in routes if r[frame]["mean"] is not None and r[frame]["reached"]]
    return min(full, key=lambda r: r[frame]["mean"]) if full else None


MIN_TREND_POINTS = 3
"""Sweep points (subsets below the reference) the gap's power law is fitted to, at least."""


def gap_trend(sweep_rows, tolerance_pp, q_full):
    """How a subset's test-accuracy gap to `lbfgs_full` shrinks with its Q, and where it would
    reach the tolerance: the least-squares line through `log(-gap)` against `log(Q)` over the
    sweep points, i.e. `-gap = c * Q**(-alpha)`, when every subset, fitted to its minimum, ended
    below the reference (at least `MIN_TREND_POINTS` of them; a subset above it means the
    reference stopped short of the training set's minimum, and there is no trend to fit).

    Statistics predicts `alpha` near 1 (a minimum's excess loss on K examples falls as P/K,
    that is as 1/Q); then Q* is `c / tolerance`, and the bound Q_full / Q* grows in proportion
    to Q_full. Returns `{points, alpha, c, q_at_tolerance, bound}`, with `q_at_tolerance` the Q
    where the line reaches `tolerance_pp` (an extrapolation when beyond the largest Q swept) and
    `bound` Q_full over it; `None` when a subset ended above the reference, fewer than
    `MIN_TREND_POINTS` were swept, or the line does not fall.
    """
    gaps = [(r["ratio"], r["gap_pp"]["mean"]) for r in sweep_rows if r["gap_pp"]["mean"] is not None]
    points = [(q, -g) for q, g in gaps if g < 0]
    if len(points) < MIN_TREND_POINTS or len(points) < len(gaps):
        return None
    if len({q for q, _ in points}) < 2:
        return None
    slope, intercept = statistics.linear_regression(
        [math.log(q) for q, _ in points], [math.log(g) for _, g in points])
    if slope >= 0:
        return None
    alpha, c = -slope, math.exp(intercept)
    q_at = (c / tolerance_pp) ** (1.0 / alpha)
    return {"points": len(points), "alpha": alpha, "c": c, "q_at_tolerance": q_at,
            "bound": q_full / q_at, "largest_q_swept": max(q for q, _ in points)}


def row(width, summary):
    """The curve's row of one width's `summary.json`."""
    runs = {run["run"]: run for run in summary["runs"]}
    reference = runs.get("lbfgs_full")
    routes = {name: _route(runs[name]) for name in ROUTES if name in runs}
    paper = [_route(run) for run in summary["runs"] if run["kind"] == "paper"]
    q_star = summary["sweep"]["smallest_q_within_tolerance"]
    user_routes = [_route(runs[n]) for n in L_BFGS_ROUTES if n in runs] + paper
    best_user = _best(user_routes, "user")
    adam = runs.get("conventional")
    sweep = [{"ratio": r["ratio"], "gap_pp": r["test_accuracy_gap_pp"],
              "seeds_cut_short": r.get("seeds_cut_short", 0),
              "cut_gap_pp": r.get("cut_gap_pp", {"mean": None})}
             for r in summary["sweep"]["rows"]]
    return {
        "width": width,
        "parameters": summary["parameters"],
        "train_examples": summary["train_examples"],
        "q_full": summary["q_full"],
        "seeds": summary["seeds"],
        "runs_missing": summary["runs_missing"],
        "reference": None if reference is None else {
            "final_test_accuracy": reference["final_test_accuracy"],
            "full_train_loss": reference["full_train_loss"]["mean"],
            # Whether the reference levelled off at the training set's minimum or on a plateau
            # above it: the lowest full training loss any run of the width ended with.
            "lowest_train_loss": min(
                (run["full_train_loss"]["mean"] for run in summary["runs"]
                 if run["full_train_loss"]["mean"] is not None), default=None),
            "levelled_off": reference["levelled_off"],
            "levelled": bool(reference["levelled_off"]) and all(reference["levelled_off"]),
            "total_evaluations": reference["total_evaluations"],
            "cost_to_target": [v["evaluations"] for v in summary["frames"]["paper"].values()],
            "stopped_by": [e.get("lbfgs_reason") for e in reference["per_seed"]],
        },
        "adam_final_test_accuracy": None if adam is None else adam["final_test_accuracy"],
        "adam_paper": None if adam is None else _ratios(adam, "paper", "ttt_evaluations_ratio"),
        "routes": routes,
        "paper_runs": paper,
        "best_paper": _best(paper, "paper"),
        "q_star": q_star,
        "bound": summary["q_full"] / q_star if q_star else None,
        "sweep": sweep,
        "gap_trend": gap_trend(sweep, summary["target_tolerance_pp"], summary["q_full"]),
        "best_user": best_user,
    }


def _levelled(r):
    return r["reference"] is not None and r["reference"]["levelled"]


PLATEAU_MARGIN = 0.95
"""A reference whose full training loss is above the lowest of its width's runs by more than
this factor levelled off on a plateau, not at the training set's minimum."""


def on_plateau(r):
    """Whether the width's `lbfgs_full` ended above another run's full training loss by more
    than 5 % (`PLATEAU_MARGIN`): it levelled off on a plateau, and the ratios against it
    measure that plateau as much as a saving."""
    ref = r["reference"]
    if ref is None or ref["full_train_loss"] is None or ref["lowest_train_loss"] is None:
        return False
    return ref["lowest_train_loss"] < PLATEAU_MARGIN * ref["full_train_loss"]


def _evidence(r):
    """Whether the width's reference levelled off at the training set's minimum (not on a plateau)."""
    return _levelled(r) and not on_plateau(r)


def answers(rows, tolerance=(0.5, 0.1)):
    """The curve's answers: the smallest Q_full from which the better of `progressive` and the
    best paper route saves half (mean paper-frame ratio <= 0.5) at every larger Q_full, each
    Q_full where one saves half (`half_at`: the curve need not be monotone) and where one
    reaches a tenth (`tenth_at`), all against references that levelled off at the training set's minimum (not on
    a plateau, `on_plateau`: those are listed apart with their ratio), and the smallest Q_full
    from which an L-BFGS route beats the faster Adam in seconds (mean user-frame ratio <= 1)."""
    half, tenth = tolerance
    best = []
    for r in rows:
        candidates = [x for x in (r["routes"].get("progressive"), r["best_paper"])
                      if x is not None and x["paper"]["mean"] is not None]
        top = min(candidates, key=lambda x: x["paper"]["mean"]) if candidates else None
        best.append((r, top))
    # Evidence: a reference that levelled off at the training set's minimum, not on a plateau;
    # where no route reached its target in every seed, that is evidence of no saving there.
    levelled = [(r, top) for r, top in best if _evidence(r)]
    def at(limit):
        return [{"q_full": r["q_full"], "run": top["run"], "mean": top["paper"]["mean"],
                 "seeds": len(top["paper"]["seeds"])}
                for r, top in levelled if top is not None and top["paper"]["mean"] <= limit]
    halves, tenths = at(half), at(tenth)
    plateaus = [{"q_full": r["q_full"], "run": None if top is None else top["run"],
                 "mean": None if top is None else top["paper"]["mean"]}
                for r, top in best if on_plateau(r)]
    beats = [r["q_full"] for r in rows
             if r["best_user"] is not None and r["best_user"]["user"]["mean"] <= 1.0]
    return {
        "half_from_q_full": _from(rows, [h["q_full"] for h in halves],
                                  [r["q_full"] for r, _ in levelled]),
        "half_at": halves,
        "tenth_at": tenths,
        "beats_adam_from_q_full": _from(rows, beats, [r["q_full"] for r in rows]),
        "largest_q_full": max((r["q_full"] for r in rows), default=None),
        "references_on_plateau": plateaus,
        "levelled_q_full": [r["q_full"] for r, _ in levelled],
        "best_paper_frame": [
            {"q_full": r["q_full"], "run": None if top is None else top["run"],
             "mean": None if top is None else top["paper"]["mean"], "levelled": _levelled(r)}
            for r, top in best],
    }


def _from(rows, hits, known):
    """The smallest Q_full from which every larger Q_full of `rows` that is `known` (evidence
    either way) is in `hits`, or `None`; the rows that are no evidence are passed over."""
    out = None
    for r in sorted(rows, key=lambda r: -r["q_full"]):
        if r["q_full"] not in known:
            continue
        if r["q_full"] not in hits:
            break
        out = r["q_full"]
    return out


def _minutes(folder):
    """The minutes of every complete run file of a width's folder (`runlog.run_seconds`)."""
    seconds = 0.0
    for path in runlog.run_files(folder):
        with open(path) as f:
            seconds += runlog.run_seconds(json.load(f))
    return seconds / 60.0


def load(root, dataset):
    """The curve of `dataset` under `root`: `{dataset, rows, answers}`."""
    rows = []
    for width, folder in _width_folders(root, dataset):
        with open(os.path.join(folder, "summary.json")) as f:
            rows.append(row(width, json.load(f)))
        rows[-1]["minutes"] = _minutes(folder)
    rows.sort(key=lambda r: r["q_full"])
    return {"dataset": dataset, "rows": rows, "answers": answers(rows)}


def _q(q):
    """A subset's Q as the tables show it: its sweep ratio (`256`), not the Q its whole number
    of examples has (`256.004`)."""
    return f"{q:.0f}" if q >= 10 else f"{q:.3g}"


def _cell(stat, digits=3):
    """`mean [min-max] (seeds)` of a ratio; "not reached (reached/seeds)" when a seed missed,
    with the values of the seeds that reached it."""
    if stat is None or not stat["seeds"]:
        return "n/a"
    n = len(stat["seeds"])
    if stat["mean"] is None:
        got = [f"{v:.{digits}f}" for v in stat["values"] if v is not None]
        return f"not reached ({stat['reached']}/{n})" + (f"; reached: {', '.join(got)}" if got else "")
    text = f"{stat['mean']:.{digits}f}"
    if n > 1:
        text += f" [{stat['min']:.{digits}f}–{stat['max']:.{digits}f}]"
    return text + f" ({n} seed{'s' if n > 1 else ''})"


def _losses(ref):
    """lbfgs_full's full training loss, and the lowest of any run when it is lower by more than
    5 %: the reference then levelled off on a plateau above the training set's minimum."""
    loss, lowest = ref["full_train_loss"], ref["lowest_train_loss"]
    if loss is None:
        return "n/a"
    if lowest is not None and lowest < 0.95 * loss:
        return f"{loss:.4f} (**{lowest:.4f}**)"
    return f"{loss:.4f}"


def _isolated_halves(a):
    """The answers' `half_at` below the Q_full from which every width saves half (those
    above it the "from" already says)."""
    start = a["half_from_q_full"]
    return [h for h in a["half_at"] if start is None or h["q_full"] < start]


def _at(points):
    """`Q_full 1000.0 (progressive, 0.097, 3 seed(s)), ...` of the answers' `half_at` or `tenth_at`."""
    return ", ".join(f"Q_full {t['q_full']:.1f} ({t['run']}, {t['mean']:.3f}, {t['seeds']} seed(s))"
                     for t in points)


def _best_paper_text(r, cell):
    """`cell(best paper run)`, or why there is none: no paper run at the width, or none reached."""
    if r["best_paper"] is not None:
        return cell(r["best_paper"])
    return "none reached" if r["paper_runs"] else "not run"


def _best_user_text(r, cell):
    """`cell(best user-frame route)`, or why there is none: no L-BFGS route at the width, or none
    reached the target in every seed."""
    if r["best_user"] is not None:
        return cell(r["best_user"])
    ran = r["paper_runs"] or r["reference"] is not None or r["routes"]
    return "none reached" if ran else "not run"


def curve_markdown(curve, title=True):
    """The curve as markdown: one row per width, and the answers (under a title)."""
    rows = curve["rows"]
    lines = [
        f"# Q-curve of {curve['dataset']}: the saving of subset pretraining against Q_full",
        "",
    ] if title else []
    lines += [
        "Paper frame: cost to `lbfgs_full`'s final test accuracy minus 0.3 pp, over "
        "`lbfgs_full`'s own cost to it; user frame: seconds to the conventional Adam's final "
        "test accuracy minus 0.3 pp, over the faster Adam's (batch 128 or 512). Ratios: mean "
        "[min–max] over seeds; \"not reached\" when a seed never got there (a route is stopped "
        "at the cost of `lbfgs_full`'s own). Q*: the smallest Q whose subset, fitted to its "
        "minimum, ends within 0.3 pp of `lbfgs_full`; Q_full / Q* bounds the saving. A training "
        "loss in bold: a run ended more than 5 % below `lbfgs_full`'s, which then levelled off "
        "on a plateau, not at the training set's minimum, and ratios against it flatter the "
        "routes.",
        "",
        "| width | P | Q_full | lbfgs_full acc. (%) | levelled off | its training loss (lowest of "
        "any run) | progressive: paper | best paper route | its paper ratio | Q* | Q_full / Q* | "
        "progressive_adam: paper | Adam: paper | best user-frame route | its time / Adam |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ref = r["reference"]
        progressive = r["routes"].get("progressive")
        padam = r["routes"].get("progressive_adam")
        best, user = r["best_paper"], r["best_user"]
        lines.append("| " + " | ".join([
            str(r["width"]), f"{r['parameters']:,d}", f"{r['q_full']:.1f}",
            "n/a" if ref is None else report.format_number(ref["final_test_accuracy"], 100.0),
            "n/a" if ref is None else ", ".join("yes" if v else "**no**" for v in ref["levelled_off"]),
            "n/a" if ref is None else _losses(ref),
            _cell(None if progressive is None else progressive["paper"]),
            _best_paper_text(r, lambda b: b["run"]),
            "—" if best is None else _cell(best["paper"]),
            "none" if r["q_star"] is None else _q(r["q_star"]),
            "—" if r["bound"] is None else f"{r['bound']:.1f}",
            _cell(None if padam is None else padam["paper"], 3),
            _cell(r["adam_paper"], 3),
            _best_user_text(r, lambda u: u["run"]),
            "—" if user is None else _cell(user["user"]),
        ]) + " |")
        if r["runs_missing"]:
            lines.append(f"| | | | *partial: {len(r['runs_missing'])} runs missing* |"
                         + " |" * 11)
    a = curve["answers"]
    lines += ["", "Answers (mean over the seeds run; the paper frame only against an `lbfgs_full` "
              "that levelled off at the training set's minimum, at Q_full = "
              + (", ".join(f"{q:.1f}" for q in a["levelled_q_full"]) or "none of the widths")
              + "):", ""]
    lines.append(
        "- Saves half (paper frame <= 0.5, `progressive` or the best paper route) from Q_full = "
        + ("none of the widths" if a["half_from_q_full"] is None else f"{a['half_from_q_full']:.1f}")
        + " on" + ("" if not _isolated_halves(a) else "; half or less also at "
                   + _at(_isolated_halves(a))) + ".")
    lines.append(
        "- A tenth (<= 0.1): " + ("at no width" if not a["tenth_at"] else _at(a["tenth_at"])) + (
            f"; the largest Q_full tried is {a['largest_q_full']:.1f}." if a["largest_q_full"] else "."))
    for p in a["references_on_plateau"]:
        lines.append(
            f"- At Q_full = {p['q_full']:.1f} `lbfgs_full` levelled off on a plateau (another run "
            "ended more than 5 % lower in full training loss): "
            + ("no route reached its target" if p["run"] is None
               else f"`{p['run']}` reached its target at {p['mean']:.3f} of its cost")
            + ", a measure of that plateau, not of a subset's saving.")
    lines.append(
        "- Beats the faster Adam in seconds (user frame <= 1) from Q_full = "
        + ("none of the widths" if a["beats_adam_from_q_full"] is None
           else f"{a['beats_adam_from_q_full']:.1f}") + " on.")
    lines.append("")
    paper_lines = []
    for r in rows:
        for p in r["paper_runs"]:
            paper_lines.append(f"| {r['q_full']:.1f} | {p['run']} | {p['ratio']:.1f} | "
                               f"{_cell(p['paper'])} | {_cell(p['user'])} |")
    if paper_lines:
        lines += ["#" * (2 if title else 4) + f" Every paper run of {curve['dataset']}", "",
                  "| Q_full | run | Q of its subset | paper: cost / lbfgs_full | user: time / Adam |",
                  "|---|---|---|---|---|", *paper_lines, ""]
    lines += gap_markdown(curve, "#" * (2 if title else 4))
    return "\n".join(lines)


def _gap_cell(point):
    """A sweep point's gap: the mean over the seeds at the subset's minimum (with how many were
    cut short, if any), or the cut seeds' gap in parentheses when none reached it."""
    gap, cut = point["gap_pp"]["mean"], point.get("seeds_cut_short", 0)
    if gap is not None:
        return f"{gap:+.2f}" + (f" ({cut} cut short)" if cut else "")
    cut_gap = point.get("cut_gap_pp", {}).get("mean")
    return "—" if cut_gap is None else f"({cut_gap:+.2f})"


def gap_markdown(curve, heading):
    """The sweep's gaps per width and Q, and their power law (`gap_trend`), as markdown lines."""
    rows = [r for r in curve["rows"] if r["sweep"]]
    if not rows:
        return []
    qs = sorted({round(s["ratio"]) for r in rows for s in r["sweep"]})
    lines = [
        f"{heading} The subset's gap against its Q, {curve['dataset']}", "",
        "Test accuracy of one subset fitted to its minimum (the paper runs' subset phase) minus "
        "`lbfgs_full`'s, in pp (mean over the seeds whose subset phase reached its own minimum; "
        "in parentheses, a Q none of whose seeds did: a cap, of iterations or of cost, cut the fit "
        "short, or it stalled at its start (`stats.STALLED_LOSS_FRACTION`: a dead network), and the "
        "gap is left out of Q* and the fit), and the power law `-gap = c·Q^-alpha` "
        "fitted through the gaps when every one is negative (at least three): where it reaches "
        "the 0.3 pp tolerance (extrapolated beyond the largest Q swept) and Q_full over that Q, "
        "the bound it implies on what a subset alone saves (a route that ends on the full set "
        "can do better).",
        "",
        "| width | Q_full | reference at the minimum | "
        + " | ".join(f"Q = {q}" for q in qs)
        + " | alpha | Q where the fit reaches 0.3 pp | Q_full over it |",
        "|---|---|---|" + "---|" * len(qs) + "---|---|---|",
    ]
    for r in rows:
        cells = {round(s["ratio"]): _gap_cell(s) for s in r["sweep"]}
        t = r["gap_trend"]
        lines.append("| " + " | ".join(
            [str(r["width"]), f"{r['q_full']:.1f}",
             "yes" if _evidence(r) else ("on a plateau" if on_plateau(r) else "**no**")]
            + [cells.get(q, "—") for q in qs]
            + (["—", "no fit", "—"] if t is None else
               [f"{t['alpha']:.2f}", f"{t['q_at_tolerance']:,.0f}", f"{t['bound']:.3g}"])) + " |")
    return lines + [""]


def write(root, dataset):
    """Writes `<root>/<dataset>/q_curve.json` and `q_curve.md`, and redraws `<root>/q_curve.png`
    over every dataset under `root`; returns the curve."""
    curve = load(root, dataset)
    folder = os.path.join(root, dataset)
    os.makedirs(folder, exist_ok=True)
    runlog.write_json(os.path.join(folder, "q_curve.json"), curve)
    runlog.write_text(os.path.join(folder, "q_curve.md"), curve_markdown(curve) + "\n")
    plot(root, os.path.join(root, "q_curve.png"))
    return curve


def datasets_under(root):
    """The datasets with at least one width folder under `root`."""
    if not os.path.isdir(root):
        return []
    return sorted(d for d in os.listdir(root) if _width_folders(root, d))


def plot(root, path):
    """Draws the paper-frame ratio of `progressive` and of the best paper route against Q_full
    (log scales, 0.1 and 0.5 drawn, the bound Q*/Q_full beside them, and the bound of the
    gap's trend where the reference is evidence (`gap_trend`); hollow markers where the
    reference is no evidence: not levelled off, or on a plateau; a route that never reached
    the target drawn at 1, where it was stopped), and the user-frame ratio of the best L-BFGS
    route (1.0 drawn), for every dataset under `root`."""
    plt = report._pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    for colour, dataset in zip(colours, datasets_under(root)):
        rows = load(root, dataset)["rows"]
        for key, marker, label in (("progressive", "o", "progressive"),
                                   ("best_paper", "s", "paper protocol (best Q)")):
            xs, ys = [], []
            for r in rows:
                route = r["best_paper"] if key == "best_paper" else r["routes"].get(key)
                if key == "best_paper" and route is None and r["paper_runs"]:
                    route = {"paper": {"mean": None}}  # no paper run reached the target
                if route is None:
                    continue
                reached = route["paper"]["mean"] is not None
                x, y = r["q_full"], route["paper"]["mean"] if reached else 1.0
                xs.append(x)
                ys.append(y)
                evidence = _evidence(r)
                left.plot([x], [y], marker if reached else "^", color=colour, ms=7,
                          mfc=colour if evidence else "none")
            if xs:
                left.plot(xs, ys, "-", color=colour, alpha=0.4)
                left.plot([], [], marker, color=colour, label=f"{dataset}: {label}")
        bound = [(r["q_full"], 1.0 / r["bound"]) for r in rows if r["bound"]]
        if bound:
            left.plot(*zip(*bound), ":x", color=colour, label=f"{dataset}: bound Q*/Q_full")
        trend = [(r["q_full"], 1.0 / r["gap_trend"]["bound"]) for r in rows
                 if _evidence(r) and r["gap_trend"] is not None]
        if trend:
            left.plot(*zip(*trend), ":+", color=colour, ms=9,
                      label=f"{dataset}: bound by the gap's trend (Q at 0.3 pp / Q_full)")
        user = [(r["q_full"], r["best_user"]["user"]["mean"]) for r in rows
                if r["best_user"] is not None]
        if user:
            right.plot(*zip(*user), "o-", color=colour, label=f"{dataset}: best L-BFGS route")
    left.plot([], [], "^", color="grey", mfc="none", label="not reached (stopped at 1)")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("Q_full = N·M/P (model width varied)")
        ax.grid(True, which="both", alpha=0.3)
    for y, text in ((0.5, "0.5"), (0.1, "0.1 (the paper's claim)")):
        left.axhline(y, color="grey", ls="--", lw=1)
        left.text(left.get_xlim()[0], y, f" {text}", va="bottom", fontsize=8, color="grey")
    right.axhline(1.0, color="grey", ls="--", lw=1)
    left.set_ylabel("cost to target / lbfgs_full's (paper frame)")
    right.set_ylabel("seconds to target / faster Adam's (user frame)")
    left.set_title("Paper frame (filled: reference levelled off at its minimum)", fontsize=10)
    right.set_title("User frame", fontsize=10)
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _trend_cell(r):
    """The front page's cell of `gap_trend`: shown only where the reference is evidence."""
    t = r["gap_trend"]
    if r["reference"] is None:
        return "— (no `lbfgs_full` yet)"
    if not _evidence(r):
        return "— (reference not at the minimum)"
    if t is None:
        return "no fit"
    return f"{t['q_at_tolerance']:,.0f} ({t['bound']:.3g})"


def headline(paths):
    """The front page's Q-curve table: one row per dataset and width under each root of
    `paths` (a `benchmarks.docs_tables` generator), then each dataset's answers; one line
    while no width has been measured."""
    lines = [
        "| dataset | width | Q_full | `lbfgs_full` levelled off | `progressive`: cost / "
        "`lbfgs_full`'s | best paper run: cost / `lbfgs_full`'s | Q* (Q_full / Q*) | Q where the gap's "
        "trend reaches 0.3 pp (Q_full over it) | best L-BFGS "
        "route: seconds / faster Adam's | minutes in the runs |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    answers_lines = []
    for root in paths:
        for dataset in datasets_under(root):
            curve = load(root, dataset)
            for r in sorted(curve["rows"], key=lambda r: -r["q_full"]):
                ref, progressive = r["reference"], r["routes"].get("progressive")
                levelled = "n/a" if ref is None else ", ".join(
                    "yes" if v else "no" for v in ref["levelled_off"]) + (
                    " (on a plateau)" if on_plateau(r) else "")
                missing = len(r["runs_missing"])
                lines.append("| " + " | ".join([
                    dataset, str(r["width"]) + (f" (partial: {missing} runs missing)" if missing else ""),
                    f"{r['q_full']:.1f}", levelled,
                    "not run" if progressive is None else _cell(progressive["paper"]),
                    _best_paper_text(r, lambda b: f"{_cell(b['paper'])}, Q = {b['ratio']:.0f}"),
                    "none" if r["q_star"] is None else f"{_q(r['q_star'])} ({r['bound']:.1f})",
                    _trend_cell(r),
                    _best_user_text(r, lambda u: f"{_cell(u['user'])}, `{u['run']}`"),
                    "n/a" if r.get("minutes") is None else f"{r['minutes']:.0f}",
                ]) + " |")
            a = curve["answers"]
            answers_lines.append(
                f"- {dataset}: half (<= 0.5) from Q_full = "
                + ("none" if a["half_from_q_full"] is None else f"{a['half_from_q_full']:.1f}")
                + " on" + ("" if not _isolated_halves(a) else "; also at " + _at(_isolated_halves(a)))
                + "; a tenth (<= 0.1) at "
                + ("none" if not a["tenth_at"] else ", ".join(f"{t['q_full']:.1f}" for t in a["tenth_at"]))
                + "; faster than Adam from Q_full = "
                + ("none" if a["beats_adam_from_q_full"] is None else f"{a['beats_adam_from_q_full']:.1f}")
                + "; reference at its minimum at Q_full = "
                + (", ".join(f"{q:.1f}" for q in a["levelled_q_full"]) or "none") + ".")
    if not answers_lines:
        return "_Not yet measured: the Q-curve runs are under way._"
    return "\n".join(lines + ["", "Paper frame against an `lbfgs_full` that levelled off at the training "
                               "set's minimum (not on a plateau), mean over the seeds run:", ""]
                     + answers_lines)


def detail(paths):
    """The curve of each dataset folder in `paths` (`<root>/<dataset>`), without its title (a
    `benchmarks.docs_tables` generator for the Q-curve's results page)."""
    parts = []
    for path in paths:
        root, dataset = os.path.split(os.path.normpath(path))
        curve = load(root, dataset)
        parts.append(f"### {dataset}\n\n" + (curve_markdown(curve, title=False).rstrip()
                                              if curve["rows"] else "_Not yet measured._"))
    return "\n\n".join(parts)
