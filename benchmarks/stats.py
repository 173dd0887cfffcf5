"""Statistics of benchmark runs: the stopping rule, time-to-target in two frames, the sweep, the summary.

Pure NumPy on the run records (the dicts written to `run_<name>_seed<k>.json`):
this module imports neither TensorFlow nor Keras nor absl, so results can be
summarized anywhere.

Stopping rule (`should_stop`): a sequence of test accuracies at a phase's
epoch ends (its starting point not counted) stops when its last `patience` values each failed to beat
the best value before them by `tolerance_pp` percentage points. The Adam phases
on the full set stop by it; a run has *levelled off* when it holds at the run's
last point (`levelled_off`: epoch ends for Adam, every point for L-BFGS).

Time-to-target, per seed, in two frames:

- paper frame: target = the `lbfgs_full` run's final test accuracy minus
  `target_tolerance` points; every run's cost and seconds to it are divided by
  `lbfgs_full`'s (the paper's reference, "optimizing over the whole training
  set");
- user frame: target = the `conventional` run's final test accuracy minus
  `target_tolerance` points; every run's cost and seconds to it are divided by
  those of the faster Adam run: of the conventional runs (every batch size),
  the one with the least seconds to this target.

A run's time-to-target is its first recorded point whose test accuracy reaches
the target. A frame whose reference run is missing is left out.

Sweep: per sweep run (one subset fitted to its minimum), the gaps of its final
test accuracy (pp) and of its loss over the whole training set to the
`lbfgs_full` run's final ones, and the smallest Q whose mean test-accuracy gap
is within `target_tolerance`; a fit that a cap ended before its minimum, or
that stalled at its start, is reported apart (`subset_phase_at_minimum`).
"""

import numpy as np

from benchmarks import provenance

FRAMES = ("paper", "user")
"""The frames of time-to-target: their reference is `lbfgs_full`, `conventional`."""

FRAME_REFERENCE = {"paper": "lbfgs_full", "user": "conventional"}
ADAM_PHASES = ("train", "finetune")

RUN_KINDS = ("conventional", "lbfgs_full", "progressive", "progressive_adam", "paper", "subset",
             "sweep")
"""The run kinds `--runs` may list, in the order they run and are reported (see
`benchmarks.runner`; `benchmarks.config` takes them from here)."""


def report_order(record):
    """The sort key of a run record in the reports: the order of `RUN_KINDS`, then batch size
    or subset Q, name, seed (so that runs reused from earlier invocations take their places).

    Args:
        record: A run record (the dict of a `run_<name>_seed<k>.json`).

    Returns:
        A tuple to sort by.

    Example:

    >>> sorted(records, key=report_order)  # doctest: +SKIP
    """
    size = (record.get("subset") or {}).get("ratio") or record.get("batch_size") or 0
    return RUN_KINDS.index(record["kind"]), size, record["run"], record["seed"]


def mean_std(values):
    """Returns `(mean, sample standard deviation)` of the values that are not
    `None`: `(None, None)` when there are none, std `None` with only one."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    mean = float(np.mean(values))
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return mean, std


def _pretrain_phases(record):
    """The `pretrain` phases of a run record (L-BFGS stages with their reasons), in order."""
    return [ph for ph in record.get("phases", []) if ph.get("phase") == "pretrain"]


def _stat(values):
    mean, std = mean_std(values)
    return {"mean": mean, "std": std}


def time_to_target(points, target):
    """Returns `(evaluations, seconds)` of the first point whose test accuracy
    reaches `target`, or `(None, None)`."""
    for point in points:
        if point["test_accuracy"] >= target - 1e-12:
            return point["evaluations"], point["seconds"]
    return None, None


def checks_without_gain(accuracies, tolerance_pp):
    """How many of the last values of `accuracies` in a row did not beat the
    best value before each of them by at least `tolerance_pp` percentage points."""
    count, best = 0, None
    for a in accuracies:
        if best is not None:
            count = 0 if 100.0 * (a - best) >= tolerance_pp - 1e-9 else count + 1
        best = a if best is None else max(best, a)
    return count


def should_stop(accuracies, tolerance_pp, patience):
    """The stopping rule: whether the last `patience` test accuracies of
    `accuracies` (the phase's epoch ends) each failed to improve on
    the best earlier one by `tolerance_pp` percentage points."""
    return checks_without_gain(accuracies, tolerance_pp) >= patience


def check_accuracies(record):
    """The test accuracies the levelling-off check looks at: the epoch ends of
    the Adam phases on the full set, every other point (initial, L-BFGS ones)."""
    out = []
    for point in record["points"]:
        epoch = point.get("phase_epoch")
        if point["phase"] in ADAM_PHASES and epoch is not None and abs(epoch - round(epoch)) > 1e-9:
            continue
        out.append(point["test_accuracy"])
    return out


def levelled_off(record, tolerance_pp, patience):
    """Whether the run has levelled off at its last point: the stopping rule holds (see
    `check_accuracies`), and, for an `lbfgs_full` run made with `--levelled_stop`, its full
    training loss levelled off too (`loss_levelled`)."""
    if not should_stop(check_accuracies(record), tolerance_pp, patience):
        return False
    config = record.get("config") or {}
    if record.get("kind") == "lbfgs_full" and config.get("levelled_stop"):
        return loss_levelled(record["points"], config["loss_window"], config["loss_tolerance"])
    return True


def stage_points(points):
    """The points of the last L-BFGS stage of a `pretrain` run, its stage-end reports left out
    (they repeat a segment's point at the weights the stage kept)."""
    stage = points[-1].get("stage")
    return [p for p in points
            if p.get("stage") == stage and "stage_loss" in p and not p.get("stage_end")]


def loss_fall(points, window):
    """The relative fall of the last stage's own loss (`stage_loss`, the full training loss on
    the full set) over its last `window` iterations: `(L(i - window) - L(i)) / |L(i - window)|`
    at the last point i, from the latest point at least `window` iterations before it; `None`
    when the stage is shorter than `window`."""
    points = stage_points(points)
    if not points:
        return None
    last = points[-1]
    earlier = [p for p in points if p["stage_iterations"] <= last["stage_iterations"] - window]
    if not earlier:
        return None
    before = earlier[-1]["stage_loss"]
    return (before - last["stage_loss"]) / abs(before) if before else 0.0


def loss_levelled(points, window, tolerance):
    """Whether the last stage's loss fell by less than `tolerance` (relative) over its last
    `window` iterations (`loss_fall`)."""
    fall = loss_fall(points, window)
    return fall is not None and fall < tolerance


def plateau_gain(record):
    """Test-accuracy gain (percentage points) of a conventional run's last
    epoch over its best earlier epoch end; `None` with fewer than 2 epochs."""
    ends = {}
    for point in record["points"]:
        e = point["phase_epoch"]
        if point["phase"] == "train" and abs(e - round(e)) < 1e-9:
            ends[int(round(e))] = point["test_accuracy"]
    if len(ends) < 2:
        return None
    last = max(ends)
    return 100.0 * (ends[last] - max(v for e, v in ends.items() if e < last))


def full_train(record):
    """`(loss, accuracy)` over the whole training set at the end of a run, or
    `(None, None)` when the record has no such measurement."""
    measured = record.get("full_train")
    if measured:
        return measured["loss"], measured["accuracy"]
    last = record["points"][-1]
    if record.get("train_eval_examples") == record.get("train_examples") and "train_loss" in last:
        return last["train_loss"], last.get("train_accuracy")
    return None, None


def _final(record):
    return record["points"][-1]["test_accuracy"]


def frame_targets(records, tolerance_pp):
    """The targets and reference costs of both frames, per seed.

    Returns:
        `{frame: {seed: {"target", "reference_accuracy", "baseline",
        "evaluations", "seconds"}}}`: the target, the reference run's final
        accuracy, the baseline run (`lbfgs_full`; the faster Adam run) and its
        time-to-target. A seed without the frame's reference run is absent.
    """
    out = {frame: {} for frame in FRAMES}
    for r in records:
        s = r["seed"]
        if r["run"] == "lbfgs_full":
            target = _final(r) - tolerance_pp / 100.0
            evals, secs = time_to_target(r["points"], target)
            out["paper"][s] = dict(target=target, reference_accuracy=_final(r),
                                   baseline="lbfgs_full", evaluations=evals, seconds=secs)
        if r["run"] == "conventional":
            target = _final(r) - tolerance_pp / 100.0
            out["user"][s] = dict(target=target, reference_accuracy=_final(r))
    for s, frame in out["user"].items():
        # The faster Adam run: least seconds to the target (then least cost).
        candidates = []
        for r in records:
            if r["seed"] == s and r["kind"] == "conventional":
                evals, secs = time_to_target(r["points"], frame["target"])
                if secs is not None:
                    candidates.append((secs, evals, r["run"]))
        secs, evals, name = min(candidates)
        frame.update(baseline=name, evaluations=evals, seconds=secs)
    return out


def _ratio(value, reference):
    return value / reference if value is not None and reference else None


def _frame_entry(record, frame):
    evals, secs = time_to_target(record["points"], frame["target"])
    return {
        "target": frame["target"],
        "baseline": frame["baseline"],
        "gap_pp": 100.0 * (_final(record) - frame["reference_accuracy"]),
        "ttt_evaluations": evals,
        "ttt_seconds": secs,
        "ttt_evaluations_ratio": _ratio(evals, frame["evaluations"]),
        "ttt_seconds_ratio": _ratio(secs, frame["seconds"]),
    }


def cross_seed_paper(records, paper_targets):
    """The paper frame of every seed against one reference: `lbfgs_full` of the lowest seed.

    `lbfgs_full` (hours on the CIFAR sets) often runs on one seed only, so the paper frame
    of the other seeds has no reference of its own; their runs are measured against the
    reference seed's target and cost instead (cross-seed: another seed's initial weights).

    Args:
        records: The records of one run, every seed.
        paper_targets: `frame_targets(...)["paper"]`.

    Returns:
        `None` without any `lbfgs_full`; else a dict: `reference_seed`, `per_seed` (per
        record: `seed`, `ttt_evaluations_ratio`, `ttt_seconds_ratio`, `None` where the target
        was not reached), `ttt_evaluations_ratio` and `ttt_seconds_ratio` (mean ± std over the
        seeds that reached it), `reached`, `seeds`.

    Example:

    >>> cross_seed_paper(progressive_records, frame_targets(records, 0.3)["paper"])  # doctest: +SKIP
    {'reference_seed': 0, 'per_seed': [{'seed': 0, 'ttt_evaluations_ratio': 0.36, ...}, ...], ...}
    """
    if not paper_targets:
        return None
    reference_seed = min(paper_targets)
    reference = paper_targets[reference_seed]
    per_seed = []
    for r in records:
        evals, secs = time_to_target(r["points"], reference["target"])
        per_seed.append({"seed": r["seed"],
                         "ttt_evaluations_ratio": _ratio(evals, reference["evaluations"]),
                         "ttt_seconds_ratio": _ratio(secs, reference["seconds"])})
    return {
        "reference_seed": reference_seed,
        "per_seed": per_seed,
        "ttt_evaluations_ratio": _stat([e["ttt_evaluations_ratio"] for e in per_seed]),
        "ttt_seconds_ratio": _stat([e["ttt_seconds_ratio"] for e in per_seed]),
        "reached": sum(e["ttt_evaluations_ratio"] is not None for e in per_seed),
        "seeds": len(per_seed),
    }


FRAME_KEYS = ("gap_pp", "ttt_evaluations", "ttt_seconds", "ttt_evaluations_ratio",
              "ttt_seconds_ratio")


def _run_summary(name, recs, targets, config):
    per_seed = []
    for r in recs:
        s = r["seed"]
        loss, accuracy = full_train(r)
        phases = r.get("phases", [])
        pretrain = _pretrain_phases(r)
        entry = {
            "seed": s,
            "final_test_accuracy": _final(r),
            "final_test_loss": r["points"][-1]["test_loss"],
            "full_train_loss": loss,
            "full_train_accuracy": accuracy,
            "total_evaluations": r["points"][-1]["evaluations"],
            "example_forwards": r["points"][-1].get("example_forwards", 0),
            "total_seconds": r.get("total_seconds", r["points"][-1]["seconds"]),
            "adam_epochs": sum(ph["epochs"] for ph in phases
                               if ph.get("optimizer") == "adam" and ph["phase"] in ADAM_PHASES),
            "levelled_off": levelled_off(r, config.plateau_tolerance, config.plateau_patience),
            "lbfgs_reason": pretrain[-1]["stages"][-1]["reason"] if pretrain else None,
            "stages": pretrain[-1]["stages"] if pretrain and r["kind"] != "sweep" else None,
            "complete": r["complete"],
        }
        for frame in FRAMES:
            if s in targets[frame]:
                entry[frame] = _frame_entry(r, targets[frame][s])
        per_seed.append(entry)
    first = recs[0]
    subset = first.get("subset") or {}
    progressive = first.get("progressive") or {}
    run = {
        "run": name,
        "kind": first["kind"],
        "optimizer": subset.get("optimizer", "lbfgs" if first["kind"] != "conventional" else "adam"),
        "batch_size": first.get("batch_size"),
        "subset_size": subset.get("size", progressive.get("last_size")),
        "first_subset_size": progressive.get("first_size"),
        # Q of the set a run fits: its subset's, its first stage's, the extended set's for
        # lbfgs_full (fixed copies); Adam (live augmentation) sees the originals' Q.
        "ratio": subset.get("ratio", progressive.get("first_ratio", first["q_full"]
                                                      if first["kind"] == "conventional"
                                                      else first.get("q_extended", first["q_full"]))),
        "copies": first.get("copies", 0),
        "last_ratio": progressive.get("last_ratio"),
        "fraction": subset.get("fraction", 1.0),
        "seeds": [e["seed"] for e in per_seed],
        "levelled_off": [e["levelled_off"] for e in per_seed],
        "per_seed": per_seed,
    }
    for key in ("final_test_accuracy", "final_test_loss", "full_train_loss",
                "full_train_accuracy", "total_evaluations", "example_forwards",
                "total_seconds", "adam_epochs"):
        run[key] = _stat([e[key] for e in per_seed])
    for frame in FRAMES:
        entries = [e[frame] for e in per_seed if frame in e]
        if entries:
            run[frame] = {key: _stat([e[key] for e in entries]) for key in FRAME_KEYS}
            run[frame]["reached"] = sum(e["ttt_evaluations"] is not None for e in entries)
            run[frame]["seeds"] = len(entries)
    cross_seed = cross_seed_paper(recs, targets["paper"])
    if cross_seed:
        run["paper_cross_seed"] = cross_seed
    # The user frame's figures under their earlier names (readers of older summaries).
    user = run.get("user")
    for key in FRAME_KEYS:
        run[key] = user[key] if user else {"mean": None, "std": None}
    run["reached_target"] = user["reached"] if user else 0
    return run


def subset_phase_end(record):
    """The point at which a paper run's subset phase ended (stage 0's stage-end report)."""
    ends = [p for p in record["points"] if p.get("stage") == 0 and p.get("stage_end")]
    return ends[-1] if ends else record["points"][-1]


AT_MINIMUM_REASONS = ("its own minimum", "converged:",
                      "stopped: the line search found no further decrease")
"""How a subset fit that reached its own minimum ended (the start of its stage's `reason`):
`pretrain(stop_rule="minimum")`'s rule, L-BFGS's convergence test, or a line search that found
no decrease left (the loss at round-off). Any other end (the iteration cap, `--levelled_stop`'s
cost cap, the run's targets reached first) cut the fit short of its minimum."""


STALLED_LOSS_FRACTION = 0.95
"""A subset fit whose loss ended above this fraction of the run's initial training loss stalled
at its start: a network whose ReLUs the first steps killed (its output constant, its loss ln M,
its gradient zero, which L-BFGS reports as converged; CIFAR-10's Q = 64 and MNIST's Q = 16 at
width 1 of the Q-curve) or a saddle. Every fit at a minimum here lowered it by more than a quarter."""


def subset_phase_at_minimum(record):
    """Whether the subset fit of a sweep run, or a paper run's subset phase, ended at its own
    minimum (`AT_MINIMUM_REASONS`: the stage-0 reason of its first pretrain phase) after
    training (its loss below `STALLED_LOSS_FRACTION` of the initial point's training loss, and
    not at a dead model where `pretrain` recorded its check, `Stage.dead_model`); a run without a
    recorded stage-0 reason counts as cut short."""
    pretrain = _pretrain_phases(record)
    stages = pretrain[0].get("stages") if pretrain else None
    if not stages or not stages[0]["reason"].startswith(AT_MINIMUM_REASONS) or stages[0].get("dead_model"):
        return False
    initial = record["points"][0].get("train_loss") if record.get("points") else None
    return initial is None or stages[0]["loss"] < STALLED_LOSS_FRACTION * initial


def sweep_summary(records, runs, tolerance_pp, skipped=()):
    """The Q sweep against `lbfgs_full`'s final point, per seed then mean ± std: the sweep
    runs' final points and the paper runs' subset-phase ends (`subset_phase_end`), both one
    subset fitted to its minimum. A fit that a cap cut short of its minimum (a sweep run's
    `--sweep_iterations`, a paper phase's iteration or cost cap) or that stalled at its start
    (`subset_phase_at_minimum`) is no such point: its gap is kept apart (`cut_gap_pp`), out of
    the mean, Q* and anything built on the gaps.

    Returns:
        A dict: `rows` (per sweep run: Q, K, test accuracy, full training
        loss, their gaps to `lbfgs_full` over the seeds at the minimum,
        `seeds_at_minimum` and `seeds_cut_short`, the cut seeds' gap
        `cut_gap_pp`, `within_tolerance`), `reference` (lbfgs_full's figures),
        `smallest_q_within_tolerance` (the smallest Q whose mean test-accuracy
        gap is at least `-tolerance_pp`, or `None`) and `skipped`.
    """
    full = {r["seed"]: r for r in records if r["run"] == "lbfgs_full"}
    rows = []
    for run in runs:
        if run["kind"] not in ("sweep", "paper"):
            continue
        acc_gaps, loss_gaps, accuracies, cut_gaps = [], [], [], []
        for r in (r for r in records if r["run"] == run["run"]):
            # A paper run's subset phase is a sweep run: its end, before the full set.
            accuracy = _final(r) if run["kind"] == "sweep" else subset_phase_end(r)["test_accuracy"]
            ref = full.get(r["seed"])
            if not subset_phase_at_minimum(r):
                if ref is not None:
                    cut_gaps.append(100.0 * (accuracy - _final(ref)))
                continue
            accuracies.append(accuracy)
            if ref is None:
                continue
            acc_gaps.append(100.0 * (accuracy - _final(ref)))
            loss, ref_loss = full_train(r)[0] if run["kind"] == "sweep" else None, full_train(ref)[0]
            loss_gaps.append(None if loss is None or ref_loss is None else loss - ref_loss)
        gap = _stat(acc_gaps)
        sweep = run["kind"] == "sweep"
        rows.append({
            "run": run["run"],
            "kind": run["kind"],
            "ratio": run["ratio"],
            "subset_size": run["subset_size"],
            "test_accuracy": run["final_test_accuracy"] if sweep else _stat(accuracies),
            # Measured on the whole training set at a sweep run's end; not at a paper run's
            # subset-phase end (its points measure --train_eval_examples).
            "full_train_loss": run["full_train_loss"] if sweep else _stat([]),
            "full_train_accuracy": run["full_train_accuracy"] if sweep else _stat([]),
            "test_accuracy_gap_pp": gap,
            "seeds_at_minimum": len(acc_gaps),
            "seeds_cut_short": len(cut_gaps),
            "cut_gap_pp": _stat(cut_gaps),
            "train_loss_gap": _stat(loss_gaps),
            "within_tolerance": gap["mean"] is not None and gap["mean"] >= -tolerance_pp - 1e-9,
        })
    rows.sort(key=lambda row: row["ratio"])
    within = [row["ratio"] for row in rows if row["within_tolerance"]]
    reference = next((run for run in runs if run["run"] == "lbfgs_full"), None)
    return {
        "rows": rows,
        "reference": None if reference is None else {
            "ratio": reference["ratio"],
            "test_accuracy": reference["final_test_accuracy"],
            "full_train_loss": reference["full_train_loss"],
            "full_train_accuracy": reference["full_train_accuracy"],
        },
        "smallest_q_within_tolerance": min(within) if within else None,
        "skipped": list(skipped),
    }


def summarize(config, records, planned=None, skipped=()):
    """Aggregates run records over seeds into the summary dict.

    Per seed: the targets and baselines of both frames (`frame_targets`), every
    run's time-to-target and ratios in each; then means and sample standard
    deviations over seeds; the sweep (`sweep_summary`).

    Args:
        config: The `Config` of the invocation (only its `target_tolerance`,
            `plateau_tolerance`, `plateau_patience`, `preset` and `epochs` are
            read).
        records: Complete run records of every seed.
        planned: `(run name, seed)` of every run the invocation plans (default:
            those of `records`). The summary says how many of them it covers
            (`runs_planned`, `runs_done`, `runs_missing`), so that one written
            while the invocation still runs, or after it was cut short, does
            not pass for a complete one.
        skipped: Why sweep values were left out, in words.

    Returns:
        The summary dict (as written to `summary.json`).
    """
    targets = frame_targets(records, config.target_tolerance)
    names = list(dict.fromkeys(r["run"] for r in records))
    runs = [_run_summary(name, [r for r in records if r["run"] == name], targets, config)
            for name in names]
    conventional = {r["seed"]: r for r in records if r["run"] == "conventional"}
    gains = {s: plateau_gain(r) for s, r in conventional.items()}
    levelled = {
        run["run"]: run["levelled_off"]
        for run in runs if run["run"] == "lbfgs_full" or run["run"].startswith("conventional")
    }
    done = {(r["run"], r["seed"]) for r in records}
    planned = list(planned) if planned is not None else [(r["run"], r["seed"]) for r in records]
    first = records[0]
    return {
        "dataset": first["dataset"],
        "model": first["model"],
        "parameters": first["parameters"],
        "outputs": first["outputs"],
        "train_examples": first["train_examples"],
        "test_examples": first["test_examples"],
        "q_full": first["q_full"],
        "augment": first["augment"],
        "copies": first.get("copies", 0),
        "q_extended": first.get("q_extended", first["q_full"]),
        "preset": config.preset,
        "target_tolerance_pp": config.target_tolerance,
        "plateau_tolerance_pp": config.plateau_tolerance,
        "plateau_patience": config.plateau_patience,
        "conventional_epochs": config.epochs,
        "seeds": sorted({r["seed"] for r in records}),
        "frames": targets,
        "conventional_final_test_accuracy": {
            s: v["reference_accuracy"] for s, v in targets["user"].items()},
        "targets": {s: v["target"] for s, v in targets["user"].items()},
        "conventional_last_epoch_gain_pp": gains,
        "conventional_levelled_off": all(levelled.get("conventional", [False])),
        "levelled_off": {name: all(v) for name, v in levelled.items()},
        "runs_planned": len(planned),
        "runs_done": len(records),
        "runs_missing": [f"{name} seed {seed}" for name, seed in planned
                         if (name, seed) not in done],
        "runs": runs,
        "sweep": sweep_summary(records, runs, config.target_tolerance, skipped),
        "sources": sources(records),
    }


def sources(records):
    """The code that made the runs: `{label: ["<run> seed <k>", ...]}`, one entry per
    `provenance.source_label` (one entry when a single version of the code made them all)."""
    out = {}
    for r in records:
        out.setdefault(provenance.source_label(r), []).append(f"{r['run']} seed {r['seed']}")
    return out
