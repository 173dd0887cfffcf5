"""A run's record on disk and its cost meter.

- `write_json`: writes a JSON file atomically (temporary file in the same
  folder, then `os.replace`), so an interrupted write leaves the previous
  file intact.
- `RunLog`: a run's record (metadata, points, phases, `complete`),
  rewritten to its JSON file after every change.
- `CostMeter`: the cumulative training cost of a run, in example-gradients
  and in training seconds (the clock stops while metrics are evaluated).
"""

import json
import os
import tempfile
import time

import numpy as np


def write_json(path, data):
    """Writes `data` as JSON to `path` atomically (temporary file, then
    `os.replace`), so an interrupted write leaves the previous file intact."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp_", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, default=_json_default)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"Not JSON serializable: {type(value)}")


class RunLog:
    """A run's record, rewritten to its JSON file after every change.

    Args:
        path: JSON file path.
        header: Dict of run metadata; `points` and `phases` lists and a
            `complete` flag are added.
    """

    def __init__(self, path, header):
        self.path = path
        self.data = dict(header)
        self.data.update(points=[], phases=[], complete=False)
        self.write()

    def add_point(self, point):
        self.data["points"].append(point)
        self.write()

    def add_phase(self, phase):
        self.data["phases"].append(phase)
        self.write()

    def finish(self):
        self.data["complete"] = True
        self.write()

    def write(self):
        write_json(self.path, self.data)


class CostMeter:
    """Cumulative training cost of a run: example-gradients and seconds.

    `seconds` counts training wall-clock time only: the clock is stopped
    (`pause`) while metrics are evaluated and restarted (`resume`) after.
    """

    def __init__(self):
        self.evaluations = 0
        self.seconds = 0.0
        self.eval_seconds = 0.0
        self._mark = None

    def resume(self):
        self._mark = time.perf_counter()

    def pause(self):
        if self._mark is not None:
            self.seconds += time.perf_counter() - self._mark
            self._mark = None
