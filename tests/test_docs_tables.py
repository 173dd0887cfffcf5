"""Tests of `benchmarks.docs_tables`: the docs' tables equal what their JSON files give.

The drift test regenerates every generated block of README.md and docs/*.md from the
committed JSON and compares byte for byte; the others show that it fails when a number
changes on one side only.
"""

import json
import os
import shutil
import warnings

import pytest

from benchmarks import docs_tables
from benchmarks import q_curve_report

# Every test of this file is quick (only the threshold test imports TensorFlow): all in the fast tier.
pytestmark = pytest.mark.fast

ROOT = docs_tables.ROOT


def test_every_generated_block_equals_what_its_json_gives():
    diffs = docs_tables.differences()
    assert not diffs, (
        "Generated blocks differ from their JSON; run `python3 -m benchmarks.docs_tables "
        "--write`:\n" + "".join(diffs.values()))


def test_every_figure_in_the_prose_stands_in_a_table_of_its_page():
    assert docs_tables.unbacked() == {}


def test_the_front_page_is_short_and_answers_both_questions_early():
    with open(os.path.join(ROOT, "README.md")) as f:
        lines = f.read().splitlines()
    assert len(lines) <= 250
    headings = {line: i + 1 for i, line in enumerate(lines) if line.startswith("## ")}
    assert headings["## Does it work?"] <= 80
    assert headings["## When to use it, and when to use Adam instead"] <= 80
    # The lead's Q-curve slot: a generated block at the top of "Does it work?".
    slot = next(i for i, line in enumerate(lines) if "generated: q-curve-headline" in line)
    assert headings["## Does it work?"] < slot + 1 < headings["## When to use it, and when to use Adam instead"]


def _page(root, name, body):
    (root / name).write_text(body)
    return name


def _block(name, *inputs):
    return f"<!-- generated: {name} {' '.join(inputs)} -->\n<!-- end generated -->\n"


def test_a_changed_number_in_a_side_scripts_json_fails_the_check(tmp_path):
    shutil.copy(os.path.join(ROOT, "docs/results/copies/copies_worth.json"), tmp_path)
    page = _page(tmp_path, "page.md", "Copies:\n\n" + _block("copies-worth", "copies_worth.json"))
    assert docs_tables.write(str(tmp_path), [page]) == [page]
    assert docs_tables.differences(str(tmp_path), [page]) == {}
    data = json.loads((tmp_path / "copies_worth.json").read_text())
    data["with_copies"][1]["originals_per_copy"] = 0.4444  # 0.36 in the committed file
    (tmp_path / "copies_worth.json").write_text(json.dumps(data))
    diff = docs_tables.differences(str(tmp_path), [page])[page]
    assert "-| one copy worth (originals, interpolated in log K) | — | 0.53 | 0.36 |" in diff
    assert "+| one copy worth (originals, interpolated in log K) | — | 0.53 | 0.44 |" in diff


def test_a_changed_number_in_a_summary_fails_the_check_and_the_command(tmp_path, monkeypatch,
                                                                       capsys):
    folder = tmp_path / "docs" / "results" / "mnist"
    shutil.copytree(os.path.join(ROOT, "docs/results/mnist"), folder)
    (tmp_path / "docs" / "results.md").write_text(
        "Paper frame:\n\n" + _block("paper-frame", "docs/results/mnist"))
    (tmp_path / "README.md").write_text("Front page.\n")
    monkeypatch.setattr(docs_tables, "ROOT", str(tmp_path))
    assert docs_tables.main(["--write"]) == 0
    assert docs_tables.main(["--check"]) == 0
    summary = json.loads((folder / "summary.json").read_text())
    progressive = next(r for r in summary["runs"] if r["run"] == "progressive")
    progressive["paper"]["ttt_evaluations_ratio"]["mean"] = 0.09  # 0.360 committed
    (folder / "summary.json").write_text(json.dumps(summary))
    capsys.readouterr()
    assert docs_tables.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "-| `progressive`: cost (time) to the target over `lbfgs_full`'s | 0.360 (0.405) |" in out
    assert "+| `progressive`: cost (time) to the target over `lbfgs_full`'s | 0.090 (0.405) |" in out


def test_a_figure_in_prose_that_no_table_shows_fails_the_check(tmp_path, monkeypatch, capsys):
    shutil.copy(os.path.join(ROOT, "docs/results/copies/copies_worth.json"), tmp_path)
    (tmp_path / "README.md").write_text(
        _block("copies-worth", "copies_worth.json")
        + "\nOne copy is worth 0.36 of an original (backed), or 0.37 (typed by hand).\n"
        + "`0.38` in code and 2026-12-04 are not figures.\n")
    monkeypatch.setattr(docs_tables, "ROOT", str(tmp_path))
    docs_tables.main(["--write"])
    capsys.readouterr()
    assert docs_tables.main(["--check"]) == 1
    assert "README.md: figures in the prose that no generated table of the page shows: 0.37" \
        in capsys.readouterr().out


def test_the_q_curve_slot_without_its_folder_says_so_in_one_line(tmp_path):
    text = docs_tables.render("q-curve-headline", ["docs/results/q_curve"], str(tmp_path))
    assert text.splitlines()[0] == "_Not yet measured: the Q-curve runs are under way._"
    assert q_curve_report.headline([str(tmp_path / "missing")]).count("\n") == 0


def test_the_seconds_table_gives_each_folders_paper_ratios_and_none_without_a_reference():
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:] for line in
            docs_tables.render("seed0-seconds", ["docs/results/mnist_seconds",
                                                 "docs/results/mnist_bf16"]).splitlines()}
    paper = rows["paper frame: `progressive`'s cost (time) to `lbfgs_full`'s target over its own"]
    summary = json.load(open(os.path.join(ROOT, "docs/results/mnist_seconds/summary.json")))
    run = next(r for r in summary["runs"] if r["run"] == "progressive")
    assert paper[0].startswith(f"{run['paper']['ttt_evaluations_ratio']['mean']:.3f} (")
    assert paper[1].rstrip(" |") == "—"  # mnist_bf16 ran no lbfgs_full: no paper frame


def test_a_marker_inside_a_code_block_is_an_example_not_a_block():
    example = "```\n" + _block("copies-worth", "missing.json") + "```\n"
    assert docs_tables.regenerate(example) == example  # not rendered: its input does not exist


def test_an_unknown_generator_is_an_error():
    with pytest.raises(KeyError, match="no generator 'nope'"):
        docs_tables.regenerate(_block("nope", "x"))


def test_regenerating_twice_changes_nothing():
    with open(os.path.join(ROOT, "docs/engine.md")) as f:
        text = f.read()
    once = docs_tables.regenerate(text)
    assert docs_tables.regenerate(once) == once


def _halves_measured():
    """Every Q_full at which subset pretraining cost at most half of a full-set L-BFGS run that
    levelled off at its minimum, in the committed results: the dataset benchmarks'
    `progressive` (every seed against the reference seed's `lbfgs_full`, the headline's ratios)
    and the Q-curve's answers (`q_curve_report.answers`: the better of `progressive` and the
    paper runs, mean over seeds, plateaus excluded)."""
    from benchmarks import results_tables
    out = {}
    results = os.path.join(ROOT, "docs/results")
    for name in sorted(os.listdir(results)):
        path = os.path.join(results, name)
        if not os.path.exists(os.path.join(path, "summary.json")):
            continue
        folder = results_tables.Folder(path)
        run = folder.runs.get("progressive")
        if not folder.summary["levelled_off"].get("lbfgs_full") or run is None:
            continue
        ratios = results_tables._cross_seed(run)
        if ratios and None not in ratios and max(ratios) <= 0.5:
            out[name] = folder.summary["q_full"]
    root = os.path.join(results, "q_curve")
    for dataset in q_curve_report.datasets_under(root):
        half = q_curve_report.load(root, dataset)["answers"]["half_from_q_full"]
        if half is not None:
            out[f"q_curve/{dataset}"] = half
    return out


def test_the_saving_warnings_threshold_is_the_smallest_measured_half():
    from keras_subset import subset
    halves = _halves_measured()
    assert halves, "no committed result saves half against a levelled-off reference"
    assert subset.SAVING_Q_FULL == round(min(halves.values()), 1), halves
    curves = os.path.join(ROOT, "docs/results/q_curve")
    assert subset.LARGEST_Q_FULL_MEASURED == round(max(
        q_curve_report.load(curves, d)["answers"]["largest_q_full"]
        for d in q_curve_report.datasets_under(curves)), 1)
    # With the shipped constants the warning fires below the threshold and only there.
    with pytest.warns(subset.SavingWarning, match=f"is below {subset.SAVING_Q_FULL:.4g}"):
        assert subset.warn_if_no_saving(subset.SAVING_Q_FULL - 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not subset.warn_if_no_saving(subset.SAVING_Q_FULL)
