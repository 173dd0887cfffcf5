"""Tests of `benchmarks.runner`: cost accounting against a hand count, on a tiny run."""

import dataclasses
import itertools
import json

import numpy as np
import pytest
import keras

from benchmark_helpers import PNG_MAGIC
from benchmarks import datasets
from benchmarks import runner
from benchmarks import stats
from benchmarks.config import Config


class _CountingLayer:
    """Builds a Keras identity layer that counts the examples it forwards."""

    def __new__(cls, counter):
        import keras
        import tensorflow as tf

        class Counting(keras.layers.Layer):
            def call(self, x):
                def count(batch):
                    if counter["enabled"]:
                        counter["examples"] += int(batch)
                    return np.float32(0.0)

                zero = tf.py_function(count, [tf.shape(x)[0]], tf.float32)
                zero.set_shape([])
                return x + tf.stop_gradient(zero)

            def compute_output_shape(self, input_shape):
                return input_shape

        return Counting()


def _tiny_data(n_train=100, n_test=50):
    """Random 28x28 images with 10 classes, as a `datasets.Dataset`."""
    rng = np.random.RandomState(0)
    return datasets.Dataset(
        name="mnist",
        x_train=rng.rand(n_train, 28, 28, 1).astype(np.float32),
        y_train=rng.randint(0, 10, n_train).astype(np.int32),
        x_test=rng.rand(n_test, 28, 28, 1).astype(np.float32),
        y_test=rng.randint(0, 10, n_test).astype(np.int32),
        num_classes=10,
    )


class _Counting:
    """A model builder whose models count the examples they forward in training,
    and an evaluator factory (the public hook) that switches the count off while
    it measures a point and notes the examples forwarded since the previous one."""

    def __init__(self):
        self.counter = {"examples": 0, "enabled": True}
        self.forwarded = []

    def build_model(self, width, input_shape, num_classes):
        import keras

        return keras.Sequential([
            keras.Input(input_shape),
            _CountingLayer(self.counter),
            keras.layers.Conv2D(width, 3, strides=3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(num_classes),
        ])

    def evaluator_factory(self, model, data, config):
        counting = self

        class PausingEvaluator:
            def __init__(self):
                self.evaluator = runner.default_evaluator(model, data, config)
                self.sizes = self.evaluator.sizes

            def __call__(self):
                counting.forwarded.append(counting.counter["examples"])
                counting.counter["examples"] = 0
                counting.counter["enabled"] = False
                try:
                    return self.evaluator()
                finally:
                    counting.counter["enabled"] = True

        return PausingEvaluator()

    def check(self, records):
        """The independent count agrees exactly with every run's points: per run (in
        the order they ran), the examples forwarded up to each point."""
        for record in records:
            steps = self.forwarded[:len(record["points"])]
            del self.forwarded[:len(record["points"])]
            counted = list(itertools.accumulate(steps))
            assert counted == [p["evaluations"] for p in record["points"]], record["run"]
        assert not self.forwarded


def test_cost_accounting_matches_hand_count(tmp_path):
    data = _tiny_data()
    counting = _Counting()
    config = Config(
        dataset="mnist", output_dir=str(tmp_path), width=2, batch_size=32, adam_batch_sizes=(),
        epochs=1, learning_rate=1e-3, fractions=(0.2,), ratios=(),
        subset_optimizer=("lbfgs", "adam"), lbfgs_iterations=3, subset_epochs=3,
        subset_eval_points=5, finetune_epochs=1, evals_per_epoch=2,
        train_eval_examples=0, eval_batch_size=64,
    )
    records, summary = runner.run_benchmark(
        config, data, counting.build_model, evaluator_factory=counting.evaluator_factory
    )
    by_name = {r["run"]: r for r in records}
    assert set(by_name) == {"conventional", "lbfgs_f0.2", "adam_f0.2"}

    def evals(name):
        return [p["evaluations"] for p in by_name[name]["points"]]

    # Conventional: 100 examples, batches of 32 -> 4 batches (32, 32, 32, 4);
    # two points per epoch, after batch 2 (64 examples) and batch 4 (100).
    assert evals("conventional") == [0, 64, 100]
    # L-BFGS on K = 0.2 * 100 = 20 examples: e evaluations cost 20 * e; then one
    # fine-tuning epoch on the 100 examples, with points at 64 and 100.
    lbfgs = by_name["lbfgs_f0.2"]
    assert lbfgs["subset"]["size"] == 20
    e = lbfgs["phases"][0]["evaluations"]
    assert e >= lbfgs["phases"][0]["iterations"] + 1
    assert evals("lbfgs_f0.2") == [0, 20 * e, 20 * e + 64, 20 * e + 100]
    # Adam on the subset: 3 epochs of 20 examples (one batch each), a point
    # per epoch, then fine-tuning.
    assert evals("adam_f0.2") == [0, 20, 40, 60, 124, 160]
    # The independent count of examples forwarded in training agrees exactly.
    counting.check(records)

    # Seconds exclude evaluation time and grow; the files hold the same.
    for name, record in by_name.items():
        on_disk = json.loads((tmp_path / f"run_{name}_seed0.json").read_text())
        assert on_disk["points"] == json.loads(json.dumps(record["points"]))
        seconds = [p["seconds"] for p in record["points"]]
        assert seconds == sorted(seconds)
    runs = {r["run"]: r for r in summary["runs"]}
    # The conventional run reaches its own target (here: already at the start,
    # as random data keep it at chance level, so its ratio is undefined).
    assert runs["conventional"]["reached_target"] == 1
    assert runs["conventional"]["ttt_evaluations"]["mean"] is not None
    assert (tmp_path / "summary.md").exists()
    assert (tmp_path / "accuracy_vs_cost.png").read_bytes().startswith(PNG_MAGIC)
    assert (tmp_path / "gap_vs_q.png").read_bytes().startswith(PNG_MAGIC)


def _pretrain_hand_count(points, sizes, held_out):
    """The cost and forward-only examples of each `pretrain` point, by hand: per
    stage k of K = `sizes[k]` examples with `held_out[k]` held-out examples, its
    evaluations so far times K plus one held-out check (of `held_out[k]`
    forward passes) per segment so far, after the finished stages' totals."""
    done_cost = done_forwards = 0
    stage, checks, evaluations, out = 0, 0, 0, []
    for point in points:
        # A stage's end (the weights it kept) comes at the cost of its last segment...
        if point.get("stage_end") and out and point["stage_evaluations"] == evaluations and (
            point["example_forwards"] == out[-1][1]
        ):
            out.append(out[-1])
            continue
        # ...or after one more held-out check, counted like a segment.
        if point["stage"] != stage:
            done_cost += evaluations * sizes[stage] + checks * held_out[stage]
            done_forwards += checks * held_out[stage]
            stage, checks = point["stage"], 0
        checks += 1
        evaluations = point["stage_evaluations"]
        forwards = done_forwards + checks * held_out[stage]
        out.append((done_cost + evaluations * sizes[stage] + checks * held_out[stage], forwards))
    return out


def test_cost_accounting_of_the_pretrain_runs_matches_hand_count(tmp_path):
    # N = 100 random examples; the model has P = 1,650 parameters and M = 10 outputs,
    # so Q = 0.3 is K = ceil(0.3 * 165) = 50 examples.
    data = _tiny_data()
    counting = _Counting()
    config = Config(
        dataset="mnist", output_dir=str(tmp_path), width=2, batch_size=32,
        adam_batch_sizes=(50,), epochs=2, plateau_patience=5, evals_per_epoch=2,
        runs=("conventional", "lbfgs_full", "progressive", "progressive_adam", "sweep"),
        lbfgs_full_iterations=4, lbfgs_points_every=2, progressive_ratio=0.3, growth=1.5,
        progressive_max_fraction=0.75, check_every=2, check_patience=1,
        sweep_ratios=(0.5, 7), sweep_iterations=3, train_eval_examples=0, eval_batch_size=64,
        augment=True,  # the Adam phases augment; the counts are the same
    )
    records, summary = runner.run_benchmark(
        config, data, counting.build_model, evaluator_factory=counting.evaluator_factory
    )
    by_name = {r["run"]: r for r in records}
    # Q = 7 needs K = 1,155 > N = 100 examples: skipped, saying so.
    assert list(by_name) == ["conventional", "conventional_b50", "lbfgs_full", "progressive",
                             "progressive_adam", "sweep_q0.5"]
    assert "sweep_q7" in summary["sweep"]["skipped"][0]

    def evals(name):
        return [p["evaluations"] for p in by_name[name]["points"]]

    # Adam at batch 32 (batches 32, 32, 32, 4) and 50 (50, 50), two points an epoch,
    # two epochs (the stopping rule's patience exceeds the cap).
    assert evals("conventional") == [0, 64, 100, 164, 200]
    assert evals("conventional_b50") == [0, 50, 100, 150, 200]
    assert by_name["conventional_b50"]["learning_rate"] == pytest.approx(1e-3 * (50 / 32) ** 0.5)

    # lbfgs_full: one stage of all 100 examples, a point every 2 iterations; every
    # evaluation (the starting one included) costs 100.
    full = by_name["lbfgs_full"]
    points = full["points"][1:]
    # ...and the stage's end (the same weights and cost: a stage without held-out checks).
    assert [p["iterations"] for p in points] == [2, 4, 4] and points[-1]["stage_end"]
    assert [p["evaluations"] for p in points] == [100 * p["stage_evaluations"] for p in points]
    stage = full["phases"][0]["stages"][0]
    assert stage["evaluations"] >= stage["iterations"] + 1
    assert full["total_evaluations"] == 100 * stage["evaluations"]

    # progressive: stages of K = 50, ceil(50 * 1.5) = 75, then all 100; each stage but
    # the last checks the next stage's new examples: 25, 25 forward passes a check.
    for name, sizes, held_out in (("progressive", [50, 75, 100], [25, 25, 0]),
                                  ("progressive_adam", [50, 75], [25, 25])):
        record = by_name[name]
        stages = record["phases"][0]["stages"]
        assert [st["size"] for st in stages] == sizes
        assert [st["held_out_size"] for st in stages] == held_out
        points = [p for p in record["points"] if p["phase"].startswith(("stage", "pretrain"))]
        hand = _pretrain_hand_count(points, sizes, held_out)
        assert [p["evaluations"] for p in points] == [cost for cost, _ in hand], name
        assert [p["example_forwards"] for p in points] == [fwd for _, fwd in hand], name
        # The stage table agrees: its example-gradients and forwards sum to the cost.
        cost = sum(st["example_gradients"] + st["example_forwards"] for st in stages)
        assert points[-1]["evaluations"] == cost
        assert all(st["example_gradients"] == st["evaluations"] * st["size"] for st in stages)
        assert [p["stage"] for p in points if p.get("stage_end")] == list(range(len(sizes)))
    # progressive_adam: the kept weights of its last stage, then Adam on all 100 examples.
    record = by_name["progressive_adam"]
    pretrain_end = [p for p in record["points"] if p.get("stage_end")][-1]["evaluations"]
    assert evals("progressive_adam")[-4:] == [pretrain_end + d for d in (64, 100, 164, 200)]
    assert record["phases"][-1]["epochs"] == 2

    # The sweep run: one subset of K = ceil(0.5 * 165) = 83 at its minimum, no fine-tuning.
    sweep = by_name["sweep_q0.5"]
    stage = sweep["phases"][0]["stages"][0]
    assert sweep["subset"]["size"] == stage["size"] == 83 and stage["held_out_size"] == 0
    assert evals("sweep_q0.5") == [0, 83 * stage["evaluations"]]
    assert sweep["full_train"]["examples"] == 100

    # The independent count of examples forwarded in training agrees exactly.
    counting.check(records)
    runs = {r["run"]: r for r in summary["runs"]}
    assert runs["progressive"]["example_forwards"]["mean"] == by_name["progressive"][
        "total_example_forwards"] > 0
    assert set(summary["frames"]["paper"][0]) >= {"target", "baseline", "evaluations"}


@pytest.mark.fast
@pytest.mark.parametrize("patience", [1, 2])
def test_adam_phases_on_the_full_set_stop_by_the_stopping_rule(patience, tmp_path):
    # No epoch can gain 50 pp: the conventional run and the fine-tuning stop after
    # `patience` + 1 epochs of their cap of 5 (the phase's start does not count, so the
    # first epoch end only sets the bar); the Adam subset phase has no such rule.
    data = _tiny_data()
    config = Config(
        dataset="mnist", output_dir=str(tmp_path), width=2, batch_size=32, adam_batch_sizes=(),
        epochs=5, plateau_tolerance=50, plateau_patience=patience, fractions=(0.2,),
        ratios=(), subset_optimizer=("adam",), subset_epochs=3, train_eval_examples=0,
        eval_batch_size=64,
    )
    records, summary = runner.run_benchmark(config, data, _tiny_model)
    conv, subset = records
    assert [p["evaluations"] for p in conv["points"]] == [100 * e for e in range(patience + 2)]
    for phase in (conv["phases"][-1], subset["phases"][-1]):
        assert phase["epochs"] == patience + 1 and phase["max_epochs"] == 5
        assert phase["stopped_by_rule"] and phase["reason"].startswith("stopping rule")
    assert subset["phases"][0]["epochs"] == 3
    assert subset["points"][-1]["evaluations"] == 3 * 20 + (patience + 1) * 100
    assert summary["conventional_levelled_off"] is True


def test_fixed_copies_count_in_q_sizes_and_cost(tmp_path):
    # --augment_copies=2: every L-BFGS phase fits each example with 2 fixed copies. P = 1,650,
    # M = 10: Q = 0.9 of the extended set is K = ceil(0.9 * 165 / 3) = 50 examples, the sweep's
    # Q = 1.5 is K = 83, Q = 7 would need 385 > 100 (skipped); every evaluation of K
    # examples costs 3 * K, and the model forwards exactly that many (the independent count).
    data = _tiny_data()
    counting = _Counting()
    config = Config(
        dataset="mnist", output_dir=str(tmp_path), width=2, batch_size=32, adam_batch_sizes=(),
        epochs=1, runs=("lbfgs_full", "subset", "sweep"), ratios=(0.9,), lbfgs_iterations=3,
        finetune_epochs=1, lbfgs_full_iterations=3, lbfgs_points_every=3, sweep_ratios=(1.5, 7),
        sweep_iterations=2, train_eval_examples=0, eval_batch_size=64, augment=True,
        augment_copies=2,
    )
    records, summary = runner.run_benchmark(
        config, data, counting.build_model, evaluator_factory=counting.evaluator_factory
    )
    by_name = {r["run"]: r for r in records}
    assert list(by_name) == ["lbfgs_full", "lbfgs_q0.9", "sweep_q1.5"]
    assert "(with 2 copies each)" in summary["sweep"]["skipped"][0]
    full = by_name["lbfgs_full"]
    stage = full["phases"][0]["stages"][0]
    assert full["copies"] == stage["copies"] == 2
    assert full["q_extended"] == pytest.approx(3 * full["q_full"])
    assert stage["ratio"] == pytest.approx(full["q_extended"])
    assert full["total_evaluations"] == 300 * stage["evaluations"]
    subset = by_name["lbfgs_q0.9"]
    assert subset["subset"]["size"] == 50 and subset["subset"]["copies"] == 2
    assert subset["subset"]["ratio"] == pytest.approx(50 * 3 * 10 / 1650)
    lbfgs = subset["phases"][0]
    assert lbfgs["evaluations_cost"] == 150 * lbfgs["evaluations"]
    # Fine-tuning (Adam, live augmentation) costs one epoch of the 100 originals.
    assert subset["points"][-1]["evaluations"] == 150 * lbfgs["evaluations"] + 100
    sweep = by_name["sweep_q1.5"]
    stage = sweep["phases"][0]["stages"][0]
    assert sweep["subset"]["size"] == stage["size"] == 83
    assert sweep["points"][-1]["evaluations"] == 3 * 83 * stage["evaluations"]
    counting.check(records)
    runs = {r["run"]: r for r in summary["runs"]}
    assert runs["lbfgs_full"]["ratio"] == pytest.approx(full["q_extended"])
    assert summary["copies"] == 2


# ----------------------------------------------------------------------------
# Interrupted runs: complete results stay until their replacement is complete.
# ----------------------------------------------------------------------------


class _Killed(Exception):
    """Stands for the process being killed (Ctrl-C, out of time)."""


def _killed_after(points):
    """An evaluator factory whose evaluators measure `points` points in all,
    then raise `_Killed`: the invocation dies after its point number `points`."""
    done = []

    def factory(model, data, config):
        evaluator = runner.default_evaluator(model, data, config)

        class Killing:
            sizes = evaluator.sizes

            def __call__(self):
                if len(done) == points:
                    raise _Killed()
                done.append(1)
                return evaluator()

        return Killing()

    return factory


def _tiny_model(width, input_shape, num_classes):
    import keras

    return keras.Sequential([
        keras.Input(input_shape),
        keras.layers.Conv2D(width, 3, strides=3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(num_classes),
    ])


def _tiny_config(output_dir):
    # Two runs of two and three points: conventional (initial, epoch 1), then
    # L-BFGS on 20 examples (initial, after L-BFGS, after fine-tuning).
    return Config(
        dataset="mnist", output_dir=str(output_dir), width=2, batch_size=32, epochs=1,
        adam_batch_sizes=(), fractions=(0.2,), ratios=(), subset_optimizer=("lbfgs",),
        lbfgs_iterations=2, finetune_epochs=1, train_eval_examples=0, eval_batch_size=64,
    )


def test_interrupted_rerun_keeps_complete_results(tmp_path):
    data, config = _tiny_data(), _tiny_config(tmp_path)
    runner.run_benchmark(config, data, _tiny_model)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert set(before) == {
        "run_conventional_seed0.json", "run_lbfgs_f0.2_seed0.json", "summary.json",
        "summary.md", "accuracy_vs_cost.png", "gap_vs_q.png"}

    # The same command again, killed after the first point of its first run.
    with pytest.raises(_Killed):
        runner.run_benchmark(config, data, _tiny_model, evaluator_factory=_killed_after(1))
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for name, content in before.items():
        assert after.get(name) == content, name
    # The run in progress is in its own file, marked incomplete; nothing else
    # (no temporary file) is left.
    assert set(after) - set(before) == {"run_conventional_seed0.partial.json"}
    partial = json.loads(after["run_conventional_seed0.partial.json"])
    assert partial["complete"] is False and len(partial["points"]) == 1

    # A rerun that completes replaces the results and removes the partial file.
    records, _ = runner.run_benchmark(config, data, _tiny_model)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before)
    on_disk = json.loads((tmp_path / "run_conventional_seed0.json").read_text())
    assert on_disk["complete"] is True
    assert on_disk["started"] == records[0]["started"]


def test_a_benchmark_runs_in_parts_with_reuse(tmp_path, capsys):
    import dataclasses

    from benchmarks import provenance

    data, config = _tiny_data(), _tiny_config(tmp_path)
    first, _ = runner.run_benchmark(dataclasses.replace(config, runs=("conventional",)), data,
                                    _tiny_model)
    # Another part: the subset run, reusing the complete conventional run (not run again).
    part = dataclasses.replace(config, runs=("conventional", "subset"), reuse=True)
    records, summary = runner.run_benchmark(part, data, _tiny_model)
    assert [r["run"] for r in records] == ["conventional", "lbfgs_f0.2"]
    assert records[0]["started"] == first[0]["started"]  # the earlier record itself
    assert summary["runs_planned"] == summary["runs_done"] == 2
    # A run reused after the last run made is reported too.
    (tmp_path / "run_conventional_seed0.json").unlink()
    again, summary = runner.run_benchmark(part, data, _tiny_model)
    assert again[0]["started"] != first[0]["started"] and again[1]["started"] == records[1]["started"]
    assert summary["runs_done"] == 2 and not summary["runs_missing"]
    first = again
    # Every run records the code that made it; all of these, this code.
    assert all(r["source"] == provenance.source_digest() for r in again)
    assert list(summary["sources"]) == [provenance.source_label(again[0])]
    # A run made by other code is reused, but the log and summary.md say so.
    path = tmp_path / "run_conventional_seed0.json"
    other = json.loads(path.read_text())
    other["source"] = {"keras_subset": "0" * 12, "benchmarks": "1" * 12}
    path.write_text(json.dumps(other))
    capsys.readouterr()
    # A part listing only the subset run still reports the earlier conventional run.
    only, summary = runner.run_benchmark(
        dataclasses.replace(part, runs=("subset",)), data, _tiny_model)
    assert sorted(r["run"] for r in only) == ["conventional", "lbfgs_f0.2"]
    assert summary["runs_planned"] == 2
    other = [line for line in capsys.readouterr().out.splitlines() if "other code" in line]
    assert len(other) == 1  # not the subset run, made by this code
    assert other[0].startswith("run conventional seed 0: kept in the reports")
    assert "made by other code (sources 000000000000/111111111111, this code's " in other[0]
    runner.run_benchmark(part, data, _tiny_model)  # listed: reused, and said to be other code
    other = [line for line in capsys.readouterr().out.splitlines() if "other code" in line]
    assert len(other) == 1 and other[0].startswith("run conventional seed 0: reusing")
    assert len(summary["sources"]) == 2
    assert "made by 2 versions of the code" in (tmp_path / "summary.md").read_text()
    # Another setting that changes the runs (the epoch cap): nothing is reused.
    changed, _ = runner.run_benchmark(dataclasses.replace(part, epochs=2), data, _tiny_model)
    assert all(r["started"] != first[0]["started"] for r in changed)
    # A run with an Adam phase recorded under the former stopping rule is not reused.
    record = json.loads((tmp_path / "run_conventional_seed0.json").read_text())
    assert runner.reusable(record, dataclasses.replace(part, epochs=2))
    record["config"] = {k: tuple(v) if isinstance(v, list) else v for k, v in record["config"].items()}
    del record["stopping_rule"]
    assert not runner.reusable(record, dataclasses.replace(part, epochs=2))


def test_an_adam_setting_leaves_the_lbfgs_only_runs_reusable(tmp_path):
    config = Config(dataset="mnist", output_dir=str(tmp_path), augment=True, augment_copies=4)
    recorded = dataclasses.asdict(config)
    adam = dataclasses.replace(
        config, epochs=40, learning_rate=5e-4, batch_size=256, evals_per_epoch=3,
        finetune_epochs=7, finetune_learning_rate=1e-4, subset_epochs=3,
        subset_learning_rate=2e-4, subset_batch_size=64, subset_eval_points=2)
    lbfgs = dataclasses.replace(config, lbfgs_full_iterations=600)
    for kind in runner.LBFGS_ONLY_KINDS:
        record = {"complete": True, "dataset": "mnist", "kind": kind, "config": recorded}
        assert runner.reusable(record, adam), kind  # no Adam phase: nothing of it changed
        assert not runner.reusable(record, lbfgs), kind
        assert not runner.reusable(record, dataclasses.replace(config, augment_copies=8)), kind
    for kind in ("conventional", "subset", "progressive_adam"):  # they have Adam phases
        record = {"complete": True, "dataset": "mnist", "kind": kind, "config": recorded,
                  "stopping_rule": runner.STOPPING_RULE}
        assert runner.reusable(record, config), kind
        for field in runner.ADAM_ONLY:
            assert getattr(adam, field) != getattr(config, field), field  # each one changes
            changed = dataclasses.replace(config, **{field: getattr(adam, field)})
            assert not runner.reusable(record, changed), (kind, field)


def test_the_route_cost_cap_leaves_every_other_kind_reusable_and_older_runs_take_defaults(tmp_path):
    config = Config(dataset="mnist", output_dir=str(tmp_path), levelled_stop=True)
    recorded = dataclasses.asdict(config)
    capped = dataclasses.replace(config, route_cost_cap=0.5)
    for kind in stats.RUN_KINDS:
        record = {"complete": True, "dataset": "mnist", "kind": kind, "config": recorded,
                  "stopping_rule": runner.STOPPING_RULE}
        assert runner.reusable(record, capped) == (kind not in runner.FULL_SET_STOP_KINDS), kind
    # --paper_iterations changes the paper runs only.
    longer = dataclasses.replace(config, paper_iterations=3000)
    for kind in stats.RUN_KINDS:
        record = {"complete": True, "dataset": "mnist", "kind": kind, "config": recorded,
                  "stopping_rule": runner.STOPPING_RULE}
        assert runner.reusable(record, longer) == (kind != "paper"), kind
    # A run recorded before the Q-curve's settings existed ran as their defaults do.
    older = {k: v for k, v in dataclasses.asdict(Config(dataset="mnist", output_dir=str(tmp_path))).items()
             if k not in ("paper_ratios", "levelled_stop", "loss_window", "loss_tolerance",
                          "route_cost_cap", "paper_iterations")}
    record = {"complete": True, "dataset": "mnist", "kind": "lbfgs_full", "config": older}
    assert runner.reusable(record, Config(dataset="mnist", output_dir=str(tmp_path)))
    assert not runner.reusable(record, config)  # --levelled_stop changes lbfgs_full


def test_summary_says_how_many_planned_runs_it_covers(tmp_path):
    data, config = _tiny_data(), _tiny_config(tmp_path)
    # Killed at the first point of the second run: the conventional run (two
    # points) is complete, the L-BFGS run is not.
    with pytest.raises(_Killed):
        runner.run_benchmark(config, data, _tiny_model, evaluator_factory=_killed_after(2))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [r["run"] for r in summary["runs"]] == ["conventional"]
    assert summary["runs_planned"] == 2 and summary["runs_done"] == 1
    assert summary["runs_missing"] == ["lbfgs_f0.2 seed 0"]
    table = (tmp_path / "summary.md").read_text()
    assert "covers 1 of 2 planned runs" in table and "lbfgs_f0.2 seed 0" in table

    _, summary = runner.run_benchmark(config, data, _tiny_model)
    assert summary["runs_planned"] == summary["runs_done"] == 2
    assert summary["runs_missing"] == []
    assert "all 2 planned runs" in (tmp_path / "summary.md").read_text()


def test_dtype_policy_builds_the_model_under_it_and_leaves_the_process_alone(tmp_path):
    data = _tiny_data()
    counting = _Counting()
    config = Config(dataset="mnist", output_dir=str(tmp_path), width=2, dtype_policy="mixed_bfloat16")
    setup = runner.prepare_seed(config, data, counting.build_model, 0, evaluator_factory=counting.evaluator_factory)
    assert {layer.compute_dtype for layer in setup.model.layers if layer.weights} == {"bfloat16"}
    assert all(v.dtype == "float32" for v in setup.model.weights)
    assert keras.config.dtype_policy().name == "float32"
    # Records made before the flag existed were float32 runs: still reusable as such.
    record = {"complete": True, "dataset": "mnist", "kind": "lbfgs_full",
              "config": {k: v for k, v in dataclasses.asdict(Config(dataset="mnist", output_dir=str(tmp_path))).items()
                         if k != "dtype_policy"}}
    assert runner.reusable(record, Config(dataset="mnist", output_dir=str(tmp_path)))
    assert not runner.reusable(record, config)
