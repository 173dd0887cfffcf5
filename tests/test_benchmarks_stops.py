"""--levelled_stop's rules (benchmarks/stops.py) and the loss rule of benchmarks/stats.py, on hand-made points."""

import pytest

from benchmark_helpers import record
from benchmarks import config as config_lib
from benchmarks import stats
from benchmarks import stops

pytestmark = pytest.mark.fast

N = 1000


def lbfgs_point(iterations, loss, accuracy, evaluations, stage=0, size=N, stage_end=False,
                stage_start=0):
    """A point of a `pretrain` run: the fields `stats` and `stops` read."""
    return {"phase": f"stage{stage}", "phase_epoch": None, "iterations": iterations,
            "stage": stage, "subset_size": size, "stage_iterations": iterations - stage_start,
            "stage_loss": loss, "stage_end": stage_end, "test_accuracy": accuracy,
            "evaluations": evaluations, "seconds": evaluations / 1000.0, "test_loss": 1.0}


def config(**values):
    base = dict(levelled_stop=True, loss_window=20, loss_tolerance=1e-3, lbfgs_points_every=10,
                plateau_tolerance=0.2, plateau_patience=2, route_cost_cap=1.0)
    base.update(values)
    return config_lib.Config(**base)


def test_the_loss_fall_is_measured_over_the_window_of_the_last_stage():
    points = [lbfgs_point(i, loss, 0.9, i * N) for i, loss in
              ((10, 1.0), (20, 0.5), (30, 0.4999), (40, 0.49985))]
    assert stats.loss_fall(points, 20) == pytest.approx((0.5 - 0.49985) / 0.5)
    assert stats.loss_levelled(points, 20, 1e-3)
    assert not stats.loss_levelled(points, 30, 1e-3)  # from iteration 10: halved
    assert stats.loss_fall(points[:1], 20) is None  # shorter than the window
    # Only the last stage counts, and a stage's end report repeats a point: it is left out.
    two_stages = points + [lbfgs_point(50, 0.3, 0.9, 50 * N, stage=1, stage_start=40),
                           lbfgs_point(50, 0.3, 0.9, 50 * N, stage=1, stage_start=40, stage_end=True)]
    assert stats.loss_fall(two_stages, 20) is None


def test_the_reference_stops_only_when_accuracy_and_loss_have_both_levelled():
    rule = stops.ReferenceStop(config())
    flat_accuracy = [(0.90, 1.0), (0.95, 0.6), (0.951, 0.5), (0.9505, 0.4999), (0.9507, 0.4998)]
    points = [lbfgs_point(10 * (i + 1), loss, acc, (i + 1) * N)
              for i, (acc, loss) in enumerate(flat_accuracy)]
    run = record("lbfgs_full", "lbfgs_full", 0, [])
    for k in range(1, len(points) + 1):
        run["points"] = points[:k]
        reason = rule(run, points[k - 1])
        # Accuracy flat from the fourth point on, but the loss fell by 17 % over 20 iterations at
        # iteration 40 (0.6 to 0.4999) and only at 50 by less than 0.1 % (0.5 to 0.4998).
        assert (reason is not None) == (k == len(points)), (k, reason)
    assert "levelled off" in reason and "0.001" in reason
    # Accuracy still gaining, loss flat: no stop.
    run["points"] = [lbfgs_point(10 * (i + 1), 0.5, 0.9 + 0.01 * i, (i + 1) * N) for i in range(5)]
    assert rule(run, run["points"][-1]) is None


def test_a_route_stops_at_the_cost_cap_anywhere_and_at_its_targets_on_the_full_set_only():
    rule = stops.RouteStop(config(), N, {"paper": 0.95, "user": 0.96}, reference_cost=100 * N)
    run = record("paper_q16", "paper", 0, [])
    subset = lbfgs_point(10, 0.1, 0.97, 5 * N, size=200)
    run["points"] = [subset]
    assert rule(run, subset) is None  # both targets met, but on the subset: it goes on
    full = lbfgs_point(20, 0.3, 0.955, 20 * N, stage=1, stage_start=10)
    run["points"].append(full)
    # A target counts at any point of the run (time to target is the first point at or above
    # it, the subset phase's included), but the run stops only in its stage on the full set.
    assert "reached every target" in rule(run, full)
    only_paper = stops.RouteStop(config(), N, {"paper": 0.95, "user": 0.99}, reference_cost=100 * N)
    assert only_paper(run, full) is None
    capped = lbfgs_point(30, 0.3, 0.9, 100 * N, stage=1, stage_start=10)
    assert "cost cap" in only_paper(run, capped)
    early = lbfgs_point(5, 1.0, 0.5, 150 * N, size=200)
    assert "cost cap" in only_paper(record("p", "paper", 0, [early]), early)
    # A route that levels off on the full set below its targets stops too.
    flat = [lbfgs_point(10 * i, 0.3, 0.9, 10 * i * N, stage=1) for i in range(1, 5)]
    assert "levelled off" in only_paper(record("p", "paper", 0, flat), flat[-1])
    # No reference cost: no cap.
    assert stops.RouteStop(config(), N, {"paper": 0.99}).cost_cap is None


def test_a_route_takes_its_seeds_targets_from_the_reference_runs():
    adam = record("conventional", "conventional", 1, [
        {"phase": "train", "phase_epoch": 1.0, "evaluations": N, "seconds": 2.0, "test_accuracy": 0.9,
         "test_loss": 1.0}])
    full = record("lbfgs_full", "lbfgs_full", 1, [lbfgs_point(10, 0.5, 0.8, 10 * N),
                                                   lbfgs_point(20, 0.4, 0.85, 21 * N)])
    other_seed = record("lbfgs_full", "lbfgs_full", 0, [lbfgs_point(10, 0.5, 0.99, 10 * N)])
    rule = stops.RouteStop.for_seed(config(target_tolerance=0.3), N, [adam, full, other_seed], 1)
    assert rule.targets == pytest.approx({"paper": 0.847, "user": 0.897})
    assert rule.reference_cost == 21 * N and rule.cost_cap == 21 * N
    assert rule.describe()["rule"] == "route"
    # Without reference runs: no targets, no cap (only the plateau ends it).
    bare = stops.RouteStop.for_seed(config(), N, [], 1)
    assert bare.targets == {} and bare.cost_cap is None


def test_a_levelled_stop_reference_is_levelled_only_when_its_loss_levelled_too():
    points = [lbfgs_point(10 * (i + 1), loss, 0.95, (i + 1) * N)
              for i, loss in enumerate((1.0, 0.6, 0.5, 0.45))]
    run = record("lbfgs_full", "lbfgs_full", 0, points,
                 config={"levelled_stop": True, "loss_window": 20, "loss_tolerance": 1e-3})
    assert not stats.levelled_off(run, 0.2, 2)  # accuracy flat, loss still falling 10 %
    run["points"].append(lbfgs_point(50, 0.4499, 0.95, 5 * N))
    run["points"].append(lbfgs_point(60, 0.4498, 0.95, 6 * N))
    assert stats.levelled_off(run, 0.2, 2)
    # A run made without --levelled_stop is judged by its accuracy alone, as before.
    run["config"] = {}
    run["points"] = points
    assert stats.levelled_off(run, 0.2, 2)
