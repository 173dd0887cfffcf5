"""The argument checks every public entry point uses (keras_subset/checks.py)."""

import numpy as np
import pytest

from keras_subset import checks

# Every test of this file is quick: all in the fast tier.
pytestmark = pytest.mark.fast


def test_integers_accept_numpy_and_refuse_bools_floats_and_out_of_range():
    assert checks.check_int("n", np.int64(3), minimum=1) == 3
    assert type(checks.check_int("n", np.int32(3))) is int
    assert checks.check_int("n", None, allow_none=True) is None
    for bad in (True, np.bool_(True), 2.0, "3", None, 0, np.int8(-1)):
        with pytest.raises(ValueError, match=r"`n` must be an integer >= 1"):
            checks.check_int("n", bad, minimum=1)
    with pytest.raises(ValueError, match=r"`n` must be an integer >= 1 and <= 5, got 6"):
        checks.check_int("n", 6, minimum=1, maximum=5)


def test_numbers_accept_numpy_scalars_and_refuse_bools_and_non_finite():
    assert checks.check_number("f", np.float32(0.5), minimum=0, maximum=1) == pytest.approx(0.5)
    assert type(checks.check_number("f", np.float32(0.5))) is float
    assert checks.check_number("f", 2) == 2.0
    for bad in (True, float("nan"), float("inf"), "0.5", None, np.float64(-np.inf)):
        with pytest.raises(ValueError, match="`f` must be a finite number"):
            checks.check_number("f", bad)
    with pytest.raises(ValueError, match=r"> 0 and <= 1, got 0"):
        checks.check_number("f", 0, minimum=0, maximum=1, min_inclusive=False)
    assert checks.check_number("f", 1, minimum=0, maximum=1, min_inclusive=False) == 1.0


def test_bools_choices_seeds_and_verbosity():
    assert checks.check_bool("b", np.bool_(False)) is False
    for bad in ("no", 1, 0, None):
        with pytest.raises(ValueError, match="`b` must be True or False"):
            checks.check_bool("b", bad)
    assert checks.check_choice("s", "random", ("random", "stratified")) == "random"
    with pytest.raises(ValueError, match=r"`s` must be one of \('random', 'stratified'\), got 'balanced'"):
        checks.check_choice("s", "balanced", ("random", "stratified"))
    assert checks.check_seed("seed", None) is None and checks.check_seed("seed", np.int64(4)) == 4
    for bad in ("x", -1, 1.5, True):
        with pytest.raises(ValueError, match="`seed` must be an integer >= 0 or None"):
            checks.check_seed("seed", bad)
    assert checks.check_verbose(np.int64(2)) == 2
    for bad in (3, -1, True, "1"):
        with pytest.raises(ValueError, match="`verbose` must be 0, 1 or 2"):
            checks.check_verbose(bad)
