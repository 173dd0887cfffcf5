"""Statistics of benchmark runs: time-to-target, levelling off, the summary (`summary.json`).

Pure NumPy on the run records (the dicts written to `run_<name>_seed<k>.json`):
this module imports neither TensorFlow nor Keras nor absl, so results can be
summarized anywhere.

Time-to-target. The target of a seed is the conventional run's final test
accuracy minus `target_tolerance` percentage points. A run's time-to-target
is its first recorded point whose test accuracy reaches the target, in
example-gradients and in seconds; a subset run's ratio is that divided by the
conventional run's. The conventional run has levelled off when its last epoch
improved the test accuracy by less than `plateau_tolerance` percentage
points over the best earlier epoch; the summary says when it has not.
"""

import numpy as np


def mean_std(values):
    """Returns `(mean, sample standard deviation)` of the values that are not
    `None`: `(None, None)` when there are none, std `None` with only one."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    mean = float(np.mean(values))
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return mean, std


def time_to_target(points, target):
    """Returns `(evaluations, seconds)` of the first point whose test accuracy
    reaches `target`, or `(None, None)`."""
    for point in points:
        if point["test_accuracy"] >= target - 1e-12:
            return point["evaluations"], point["seconds"]
    return None, None


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


def summarize(config, records, planned=None):
    """Aggregates run records over seeds into the summary dict.

    Per seed: the target is the conventional final test accuracy minus
    `target_tolerance` points; a run's time-to-target is its first point at or
    above the target; ratios are subset over conventional. Then means and
    sample standard deviations over seeds.

    Args:
        config: The `Config` of the invocation (only its `target_tolerance`,
            `plateau_tolerance`, `preset` and `epochs` are read).
        records: Complete run records, conventional and subset runs of every seed.
        planned: `(run name, seed)` of every run the invocation plans (default:
            those of `records`). The summary says how many of them it covers
            (`runs_planned`, `runs_done`, `runs_missing`), so that one written
            while the invocation still runs, or after it was cut short, does
            not pass for a complete one.

    Returns:
        The summary dict (as written to `summary.json`).
    """
    conventional = {r["seed"]: r for r in records if r["kind"] == "conventional"}
    conv_final = {s: r["points"][-1]["test_accuracy"] for s, r in conventional.items()}
    targets = {s: a - config.target_tolerance / 100.0 for s, a in conv_final.items()}
    conv_ttt = {s: time_to_target(r["points"], targets[s]) for s, r in conventional.items()}
    gains = {s: plateau_gain(r) for s, r in conventional.items()}
    levelled = [g is not None and g < config.plateau_tolerance for g in gains.values()]
    names = []
    for r in records:
        if r["run"] not in names:
            names.append(r["run"])
    runs = []
    for name in names:
        recs = [r for r in records if r["run"] == name]
        per_seed = []
        for r in recs:
            s = r["seed"]
            final = r["points"][-1]["test_accuracy"]
            entry = {
                "seed": s,
                "final_test_accuracy": final,
                "final_test_loss": r["points"][-1]["test_loss"],
                "total_evaluations": r["points"][-1]["evaluations"],
                "total_seconds": r.get("total_seconds", r["points"][-1]["seconds"]),
                "complete": r["complete"],
            }
            if s in targets:
                evals, secs = time_to_target(r["points"], targets[s])
                c_evals, c_secs = conv_ttt[s]
                entry.update(
                    target=targets[s],
                    gap_pp=100.0 * (final - conv_final[s]),
                    ttt_evaluations=evals,
                    ttt_seconds=secs,
                    ttt_evaluations_ratio=(
                        evals / c_evals if evals is not None and c_evals else None
                    ),
                    ttt_seconds_ratio=(
                        secs / c_secs if secs is not None and c_secs else None
                    ),
                )
            per_seed.append(entry)
        subset = recs[0]["subset"] or {}
        run = {
            "run": name,
            "kind": recs[0]["kind"],
            "optimizer": subset.get("optimizer", "adam"),
            "subset_size": subset.get("size"),
            "ratio": subset.get("ratio", recs[0]["q_full"]),
            "fraction": subset.get("fraction", 1.0),
            "seeds": [e["seed"] for e in per_seed],
            "reached_target": sum(e.get("ttt_evaluations") is not None for e in per_seed),
            "per_seed": per_seed,
        }
        for key in ("final_test_accuracy", "gap_pp", "ttt_evaluations", "ttt_seconds",
                    "ttt_evaluations_ratio", "ttt_seconds_ratio", "total_evaluations",
                    "total_seconds"):
            mean, std = mean_std([e.get(key) for e in per_seed])
            run[key] = {"mean": mean, "std": std}
        runs.append(run)
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
        "preset": config.preset,
        "target_tolerance_pp": config.target_tolerance,
        "plateau_tolerance_pp": config.plateau_tolerance,
        "conventional_epochs": config.epochs,
        "conventional_final_test_accuracy": conv_final,
        "targets": targets,
        "conventional_last_epoch_gain_pp": gains,
        "conventional_levelled_off": bool(levelled) and all(levelled),
        "runs_planned": len(planned),
        "runs_done": len(records),
        "runs_missing": [f"{name} seed {seed}" for name, seed in planned
                         if (name, seed) not in done],
        "runs": runs,
    }
