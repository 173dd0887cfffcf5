"""A run's record on disk and its cost meter.

- `atomic_file`, `write_json`, `write_text`: write a file atomically
  (temporary file in the same folder, then `os.replace`), so that a reader
  or an interruption sees the previous file or the new one, never half of
  one.
- `RunLog`: a run's record (metadata, points, phases, `complete`). While the
  run goes on, it is rewritten after every change to
  `run_<name>_seed<k>.partial.json`; when the run completes, it replaces
  `run_<name>_seed<k>.json` and the partial file is deleted. So a complete
  result from an earlier invocation stays intact until its replacement is
  complete, and an interrupted run leaves a valid partial file.
- `CostMeter`: the cumulative training cost of a run, in example-gradients
  (forward-only passes of held-out checks included, and counted apart too)
  and in training seconds (the clock stops while metrics are evaluated).
"""

import contextlib
import json
import os
import tempfile
import time

import numpy as np


@contextlib.contextmanager
def atomic_file(path):
    """Yields a temporary path in the folder of `path` (same extension) to
    write; on success moves it onto `path` with `os.replace`, on failure
    deletes it, so `path` holds the previous file or the complete new one."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp_", suffix=os.path.splitext(path)[1])
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json(path, data):
    """Writes `data` as JSON to `path` atomically (see `atomic_file`)."""
    with atomic_file(path) as tmp, open(tmp, "w") as f:
        json.dump(data, f, indent=1, default=_json_default)


def write_text(path, text):
    """Writes `text` to `path` atomically (see `atomic_file`)."""
    with atomic_file(path) as tmp, open(tmp, "w") as f:
        f.write(text)


def partial_path(path):
    """The file of a run in progress: `run_x_seed0.json` -> `run_x_seed0.partial.json`."""
    root, ext = os.path.splitext(path)
    return f"{root}.partial{ext}"


def run_files(folder, partial=False):
    """The run files of an output folder, sorted by name.

    Args:
        folder: An output folder (`--output_dir`).
        partial: `False`: the complete runs `run_<name>_seed<k>.json`; `True`: the runs in
            progress or cut short, `run_<name>_seed<k>.partial.json`.

    Returns:
        Their paths (none when the folder does not exist).
    """
    if not os.path.isdir(folder):
        return []
    names = sorted(os.listdir(folder))
    return [os.path.join(folder, n) for n in names if n.startswith("run_") and n.endswith(".json")
            and n.endswith(".partial.json") == partial]


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"Not JSON serializable: {type(value)}")


class RunLog:
    """A run's record, written atomically after every change.

    Until `finish`, the record goes to `partial_path(path)`; `finish` marks
    it complete, writes it to `path` and deletes the partial file. `path`
    thus only ever holds a complete record (this run's or an earlier one's).

    Args:
        path: JSON file of the complete run.
        header: Dict of run metadata; `points` and `phases` lists and a
            `complete` flag are added.
    """

    def __init__(self, path, header):
        self.path = path
        self.partial_path = partial_path(path)
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
        os.remove(self.partial_path)

    def write(self):
        write_json(self.path if self.data["complete"] else self.partial_path, self.data)


class CostMeter:
    """Cumulative training cost of a run: example-gradients and seconds.

    `evaluations` is the cost in example-gradients; the forward-only passes of
    the held-out checks of `keras_subset.pretrain` are in it as whole
    example-gradients (conservative) and also counted apart in `forwards`.
    `seconds` counts training wall-clock time only: the clock is stopped
    (`pause`) while metrics are evaluated and restarted (`resume`) after.
    """

    def __init__(self):
        self.evaluations = 0
        self.forwards = 0
        self.seconds = 0.0
        self.eval_seconds = 0.0
        self._mark = None

    def resume(self):
        self._mark = time.perf_counter()

    def pause(self):
        if self._mark is not None:
            self.seconds += time.perf_counter() - self._mark
            self._mark = None


def run_seconds(record):
    """A run's seconds: training and evaluation (tracing included, start-up and data loading not)."""
    return record["total_seconds"] + record.get("total_eval_seconds", 0.0)
