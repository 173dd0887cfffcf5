"""When `--levelled_stop` ends an L-BFGS run of a benchmark before its iteration cap.

Full-set L-BFGS has no natural end: its loss keeps falling long after its test
accuracy stopped gaining. A reference that is cut off early makes every ratio
against it look better than it is; one run far past its plateau costs hours.
With `--levelled_stop`, after every point of a `pretrain` run (`PretrainPoints`):

- `ReferenceStop` ends `lbfgs_full` once it has levelled off (`stats.levelled_off`:
  no test-accuracy gain by the stopping rule over its points, and a full training
  loss that fell by less than `--loss_tolerance` over the last `--loss_window`
  iterations). Its iteration cap ends it otherwise, and it is reported as not
  levelled.
- `RouteStop` ends a progressive or paper run in its stage on the full set once
  it has reached every target of its seed (`lbfgs_full`'s and `conventional`'s
  final test accuracy minus `--target_tolerance`), or once that stage levels off
  by the reference's rule; and at any stage once the run has spent
  `--route_cost_cap` times `lbfgs_full`'s cost to its target, where it can no
  longer save anything.

Like `stats`, this module imports neither TensorFlow nor Keras.
"""

from benchmarks import stats


class ReferenceStop:
    """Ends `lbfgs_full` when it has levelled off.

    Args:
        config: The benchmark's `Config` (`plateau_tolerance`, `plateau_patience`,
            `loss_window`, `loss_tolerance`).
    """

    def __init__(self, config):
        self.config = config

    def describe(self):
        """The rule, for the run's record."""
        c = self.config
        return {"rule": "levelled", "plateau_tolerance_pp": c.plateau_tolerance,
                "plateau_patience": c.plateau_patience, "loss_window": c.loss_window,
                "loss_tolerance": c.loss_tolerance}

    def __call__(self, record, point):
        """Why the run stops after `point` (the last of `record["points"]`), or `None`."""
        c = self.config
        if not stats.should_stop(stats.check_accuracies(record), c.plateau_tolerance,
                                 c.plateau_patience):
            return None
        fall = stats.loss_fall(record["points"], c.loss_window)
        if fall is None or fall >= c.loss_tolerance:
            return None
        return (f"levelled off: no test-accuracy gain of {c.plateau_tolerance:g} pp over "
                f"{c.plateau_patience} points, and the full training loss fell by {fall:.2e} "
                f"(relative) over the last {c.loss_window} iterations, less than "
                f"{c.loss_tolerance:g}")


class RouteStop:
    """Ends a progressive or paper run at its seed's targets, its plateau or the cost cap.

    Args:
        config: The benchmark's `Config`.
        n_train: N, the training set's size (a point on all of it is in the full-set stage).
        targets: `{frame: target test accuracy}` of the frames whose reference run this seed
            has (`stats.frame_targets`).
        reference_cost: `lbfgs_full`'s cost to its target, or `None` (no cap).
    """

    def __init__(self, config, n_train, targets, reference_cost=None):
        self.config = config
        self.n_train = n_train
        self.targets = dict(targets)
        self.reference_cost = reference_cost

    @classmethod
    def for_seed(cls, config, n_train, records, seed):
        """The stop of a run of `seed`, from the seed's complete runs in `records`."""
        frames = stats.frame_targets([r for r in records if r["seed"] == seed],
                                     config.target_tolerance)
        targets = {frame: v[seed]["target"] for frame, v in frames.items() if seed in v}
        paper = frames["paper"].get(seed)
        return cls(config, n_train, targets, paper["evaluations"] if paper else None)

    @property
    def cost_cap(self):
        """The most cost of the run (example-gradients), or `None`."""
        if self.reference_cost is None:
            return None
        return self.config.route_cost_cap * self.reference_cost

    def describe(self):
        """The rule, for the run's record."""
        return {**ReferenceStop(self.config).describe(), "rule": "route", "targets": self.targets,
                "reference_cost": self.reference_cost, "cost_cap": self.cost_cap}

    def __call__(self, record, point):
        """Why the run stops after `point` (the last of `record["points"]`), or `None`."""
        c = self.config
        cap = self.cost_cap
        if cap is not None and point["evaluations"] >= cap:
            return (f"cost cap: {point['evaluations']:,d} example-gradients, {c.route_cost_cap:g} "
                    "times lbfgs_full's cost to its target")
        if point.get("subset_size") != self.n_train:
            return None
        points = record["points"]
        reached = {frame: any(p["test_accuracy"] >= target - 1e-12 for p in points)
                   for frame, target in self.targets.items()}
        if reached and all(reached.values()):
            return "reached every target of its seed (" + ", ".join(
                f"{frame} {100 * t:.2f} %" for frame, t in self.targets.items()) + ")"
        stage = stats.stage_points(points)
        if (stats.should_stop([p["test_accuracy"] for p in stage], c.plateau_tolerance,
                              c.plateau_patience)
                and stats.loss_levelled(points, c.loss_window, c.loss_tolerance)):
            return "levelled off on the full set before reaching every target"
        return None
