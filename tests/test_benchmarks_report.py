"""Tests of `benchmarks.report`: the one number formatter of the reports."""

from benchmarks import overview
from benchmarks import report


def test_one_number_formatter_for_reports_and_overview():
    fmt = report.format_number
    assert fmt(None) == "not reached"
    assert fmt(0.125, digits=3) == "0.125"
    assert fmt(3) == "3.00"
    # A statistic over seeds: mean ± std, scaled; no std with one seed.
    assert fmt({"mean": 0.5, "std": 0.25}, 100.0, 1, "%") == "50.0 ± 25.0%"
    assert fmt({"mean": 0.5, "std": None}) == "0.50"
    assert fmt({"mean": None, "std": None}, missing="n/a") == "n/a"
    # The overview table formats with the same function.
    assert overview.format_number is report.format_number
