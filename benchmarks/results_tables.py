"""Tables of the benchmark folders for the docs, made from their `summary.json` and run files.

Each public function takes the folders a page's generated block names (see
`benchmarks.docs_tables`) and returns a markdown table, one column per folder (or per
dataset) and one row per figure, so that three datasets read side by side. Every number
comes from a folder's `summary.json` (`stats.summarize`) or, where the summary does not keep
it (a stage's test accuracy, the preset's sweep iterations), from the folder's run files.
Like `stats` and `report`, this module needs no TensorFlow.

Example:

>>> print(paper_frame(["docs/results/mnist", "docs/results/cifar10"]))  # doctest: +SKIP
| paper frame, seed 0 | MNIST | CIFAR-10 |
...
"""

import json
import os

from benchmarks import overview
from benchmarks import provenance
from benchmarks import runlog
from benchmarks import stats
from benchmarks.report import cut_short_rows
from benchmarks.report import format_number
from benchmarks.report import format_ratio
from benchmarks.report import markdown_table

DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10",
                 "cifar100": "CIFAR-100"}
"""How the tables name a summary's `dataset`."""

L_BFGS_ROUTES = ("lbfgs_full", "progressive", "progressive_adam", "subset")
"""The run kinds that train with L-BFGS and are measured against Adam in the user frame."""


class Folder:
    """A benchmark output folder: its summary, its runs by name, its run files on demand.

    Args:
        path: The folder (it must hold a `summary.json`).
    """

    def __init__(self, path):
        self.path = path
        self.summary = overview.load_summary(path)
        if self.summary is None:
            raise ValueError(f"{path} holds no summary.json (a benchmark script's folder does).")
        self.n = self.summary["train_examples"]
        self.runs = {run["run"]: run for run in self.summary["runs"]}
        self.copies = self.summary.get("copies", 0)

    @property
    def title(self):
        """The column title: the dataset, and the fixed copies when there are any."""
        name = DATASET_NAMES.get(self.summary["dataset"], self.summary["dataset"])
        return name + (f", {self.copies} copies" if self.copies else "")

    def of_kind(self, kind):
        """The runs of one kind (`stats.RUN_KINDS`), in the summary's order."""
        return [run for run in self.summary["runs"] if run["kind"] == kind]

    def record(self, run, seed):
        """The run file of `run` and `seed` as a dict."""
        with open(os.path.join(self.path, f"run_{run}_seed{seed}.json")) as f:
            return json.load(f)

    @property
    def paper_seed(self):
        """The seed of the `lbfgs_full` reference (the lowest one), or `None`."""
        seeds = self.summary["frames"]["paper"]
        return min(int(s) for s in seeds) if seeds else None

    def paper_reference(self):
        """The paper frame's target and `lbfgs_full`'s cost to it, of the reference seed."""
        return self.summary["frames"]["paper"][str(self.paper_seed)]


def _folders(paths):
    return [Folder(p) for p in paths]


def _percent(value):
    return format_number(value, 100.0, suffix=" %")


def _seeds_text(seeds):
    """"0", "0, 1" or "0-2" for consecutive seeds."""
    seeds = sorted(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(str(s) for s in seeds)


def _not_levelled(run):
    """" (seed 2 not levelled off)" for the seeds whose run had not levelled off, else ""."""
    seeds = [s for s, flag in zip(run["seeds"], run["levelled_off"]) if not flag]
    if not seeds:
        return ""
    return f" (seed{'s' if len(seeds) > 1 else ''} {_seeds_text(seeds)} **not levelled off**)"


def _pair(frame, first="ttt_evaluations_ratio", missing="not reached"):
    """"cost ratio (time ratio)" of a frame's figures, or with `first="ttt_seconds_ratio"`
    "time ratio (cost ratio)"; `missing` when the target was not reached."""
    if frame is None or frame["ttt_evaluations_ratio"]["mean"] is None:
        return missing
    second = "ttt_seconds_ratio" if first == "ttt_evaluations_ratio" else "ttt_evaluations_ratio"
    return f"{format_ratio(frame[first])} ({format_ratio(frame[second])})"


def _table(columns, corner, rows, titles=None):
    """A table with one column per item of `columns` (folders, by default titled by their
    `title`): `rows` is a list of `(row title, cell(column) -> text)`."""
    body = [[title] + [cell(c) for c in columns] for title, cell in rows]
    return markdown_table([corner] + (titles or [c.title for c in columns]), body)


def _runs_cell(folder, kind, cell):
    """`cell(run)` of every run of `kind`, named when there are several or for subset runs."""
    runs = folder.of_kind(kind)
    if not runs:
        return "—"
    named = len(runs) > 1 or kind == "subset"
    return "; ".join((f"`{r['run']}`: " if named else "") + cell(r) for r in runs)


# ------------------------------------------------------------------------ paper frame


def _cross_seed(run):
    """Every seed's cost ratio against the reference seed's `lbfgs_full`, in seed order."""
    entries = run.get("paper_cross_seed", {}).get("per_seed", [])
    return [e["ttt_evaluations_ratio"] for e in entries]


def _cross_seed_cell(run):
    values = _cross_seed(run)
    if not values:
        return "n/a"
    return ", ".join(format_ratio(v) for v in values)


def _lbfgs_full_cell(folder):
    run = folder.runs.get("lbfgs_full")
    if run is None:
        return "n/a (no `lbfgs_full`)"
    reference = folder.paper_reference()
    return (f"{_percent(reference['reference_accuracy'])}"
            f"{'' if all(run['levelled_off']) else ', **not levelled off**'}; "
            f"{_percent(reference['target'])}; "
            f"{format_number(reference['evaluations'] / folder.n, digits=1)}")


def paper_frame(paths):
    """The paper frame: cost (time) to `lbfgs_full`'s final test accuracy − the tolerance,
    over `lbfgs_full`'s own, per folder (the reference seed's; the cross-seed row gives every
    seed's `progressive` against that one reference).

    Args:
        paths: Benchmark output folders.

    Returns:
        The markdown table.
    """
    folders = _folders(paths)
    tolerance = folders[0].summary["target_tolerance_pp"]
    rows = [
        ("Q of the set `lbfgs_full` fits (copies counted)",
         lambda f: format_number(f.summary["q_extended"], digits=1)),
        (f"`lbfgs_full`: final test accuracy; target (that − {tolerance:g} pp); "
         "its cost to the target (epochs)", _lbfgs_full_cell),
        ("`progressive`: cost (time) to the target over `lbfgs_full`'s",
         lambda f: _runs_cell(f, "progressive", lambda r: _pair(r.get("paper")))),
        ("`progressive`, every seed against the reference seed's `lbfgs_full` (cross-seed)",
         lambda f: _runs_cell(f, "progressive", _cross_seed_cell)),
        ("`progressive_adam`: the same as `progressive`",
         lambda f: _runs_cell(f, "progressive_adam", lambda r: _pair(r.get("paper")))),
        ("one subset then Adam: the same",
         lambda f: _runs_cell(f, "subset", lambda r: _pair(r.get("paper")))),
        ("Adam alone: the same",
         lambda f: _runs_cell(f, "conventional", lambda r: _pair(r.get("paper")))),
    ]
    seed = folders[0].paper_seed
    return _table(folders, f"paper frame, seed {seed}", rows)


# ------------------------------------------------------------------------- user frame


def _targets_cell(folder):
    targets = folder.summary["frames"]["user"]
    return ", ".join(format_number(t["target"], 100.0) for t in targets.values()) + " %"


def _fastest_adam_cell(folder):
    targets = folder.summary["frames"]["user"]
    seconds = [t["seconds"] for t in targets.values()]
    by_run = {}
    for seed, t in targets.items():
        by_run.setdefault(t["baseline"], []).append(int(seed))
    which = "; ".join(f"`{name}` in seed{'s' if len(s) > 1 else ''} {_seeds_text(s)}"
                      for name, s in by_run.items())
    mean = sum(seconds) / len(seconds)
    std = None
    if len(seconds) > 1:
        std = (sum((x - mean) ** 2 for x in seconds) / (len(seconds) - 1)) ** 0.5
    return f"{format_number({'mean': mean, 'std': std}, digits=1)} s ({which})"


def _user_cell(run):
    """"time (cost), k of n; final accuracy" of a run in the user frame."""
    user = run.get("user")
    final = _percent(run["final_test_accuracy"])
    if user is None:
        return f"n/a; final {final}"
    if user["reached"] == 0:
        return f"not reached in any seed; final {final}"
    return (f"{_pair(user, first='ttt_seconds_ratio')}, {user['reached']} of {user['seeds']}; "
            f"final {final}")


def user_frame(paths):
    """The user frame: seconds (cost) to `conventional`'s final test accuracy − the
    tolerance, over the faster Adam run's, per seed, then mean ± std over the seeds that
    reached it, with how many did.

    Args:
        paths: Benchmark output folders.

    Returns:
        The markdown table.
    """
    folders = _folders(paths)
    tolerance = folders[0].summary["target_tolerance_pp"]
    rows = [
        (f"targets per seed (`conventional`'s final test accuracy − {tolerance:g} pp)",
         _targets_cell),
        ("Adam (`conventional` runs): final test accuracy",
         lambda f: _runs_cell(f, "conventional", lambda r: f"batch {r['batch_size']}: "
                              + _percent(r["final_test_accuracy"]) + _not_levelled(r))),
        ("fastest Adam: seconds to the target", _fastest_adam_cell),
    ]
    titles = {"lbfgs_full": "`lbfgs_full`", "progressive": "`progressive`",
              "progressive_adam": "`progressive_adam`", "subset": "one subset then Adam"}
    for kind in L_BFGS_ROUTES:
        rows.append((f"{titles[kind]}: seconds (cost) over the fastest Adam's, seeds that "
                     "reached the target; final test accuracy",
                     lambda f, kind=kind: _runs_cell(f, kind, _user_cell)))
    seeds = sorted({s for f in folders for s in f.summary["seeds"]})
    return _table(folders, f"user frame, seeds {_seeds_text(seeds)}", rows)


# ---------------------------------------------------------------------------- Q sweep


def _sweep_iterations(folder):
    rows = folder.summary["sweep"]["rows"]
    if not rows:
        return None
    return folder.record(rows[0]["run"], folder.summary["seeds"][0])["config"]["sweep_iterations"]


def gap_text(row):
    """A sweep row's test-accuracy gap (pp): the mean over the seeds whose subset fit reached its
    minimum, or, when none did, the cut-short fits' gap in parentheses (`stats.sweep_summary`)."""
    if row["test_accuracy_gap_pp"]["mean"] is not None:
        return format_number(row["test_accuracy_gap_pp"])
    cut = row.get("cut_gap_pp", {"mean": None})
    return "n/a" if cut["mean"] is None else f"({format_number(cut)})"


def smallest_q_text(folder):
    """"32 (-0.19 pp)", or "none up to 16 (-1.52 pp); 32 cut short (-0.40 pp)": the smallest Q
    of the sweep within the tolerance of `lbfgs_full` among the fits at their minimum, or the
    largest such Q and its gap, then the largest Q above it whose fit a cap cut short."""
    sweep = folder.summary["sweep"]
    at_minimum = [r for r in sweep["rows"] if r["test_accuracy_gap_pp"]["mean"] is not None]
    cut = cut_short_rows(sweep["rows"])
    if not at_minimum and not cut:
        return "no sweep"
    smallest = sweep["smallest_q_within_tolerance"]
    if smallest is not None:
        row = next(r for r in at_minimum if r["ratio"] == smallest)
        return f"{row['ratio']:.0f} ({format_number(row['test_accuracy_gap_pp']['mean'], digits=2)} pp)"
    text = "no fit at its minimum"
    if at_minimum:
        row = at_minimum[-1]
        text = (f"none up to {row['ratio']:.0f} "
                f"({format_number(row['test_accuracy_gap_pp']['mean'], digits=2)} pp)")
    above = [r for r in cut if not at_minimum or r["ratio"] > at_minimum[-1]["ratio"]]
    if above:
        row = above[-1]
        text += (f"; {row['ratio']:.0f} cut short "
                 f"({format_number(row['cut_gap_pp']['mean'], digits=2)} pp)")
    return text


def sweep(paths):
    """The Q sweep: per folder, the test-accuracy gap (pp) of one subset fitted to its
    minimum to `lbfgs_full` on the same set, at each Q (with copies, Q counts them); the
    smallest Q within the tolerance in bold; in parentheses a fit that the iteration cap
    ended before its minimum (`gap_text`), which no smallest Q rests on.

    Args:
        paths: Benchmark output folders.

    Returns:
        The markdown table: one row per folder, one column per Q measured anywhere.
    """
    folders = _folders(paths)
    qs = sorted({round(r["ratio"]) for f in folders for r in f.summary["sweep"]["rows"]})
    body = []
    for f in folders:
        gaps = {round(r["ratio"]): r for r in f.summary["sweep"]["rows"]}
        smallest = f.summary["sweep"]["smallest_q_within_tolerance"]
        cells = []
        for q in qs:
            row = gaps.get(q)
            text = "" if row is None else gap_text(row)
            cells.append(f"**{text}**" if row and row["ratio"] == smallest else text)
        body.append([f.title, str(_sweep_iterations(f)), *cells, smallest_q_text(f)])
    tolerance = folders[0].summary["target_tolerance_pp"]
    header = ["gap to `lbfgs_full` (pp) at Q =", "L-BFGS iterations", *map(str, qs),
              f"smallest Q within {tolerance:g} pp"]
    return markdown_table(header, body)


# --------------------------------------------------------------------------- stages


def _stage_points(record):
    """The last point of every stage of a progressive record, in stage order."""
    return [p for p in record["points"] if p.get("stage_end")]


def _below_full(entry, n):
    """The stages of a per-seed entry below the full set."""
    return [s for s in entry["stages"] if s["size"] < n]


def _stage_cost(stages, n):
    return sum(s["example_gradients"] + s["example_forwards"] for s in stages) / n


def _progressive_stage_cells(folder):
    """The cells of `stages` for one folder's `progressive` run (reference seed)."""
    run = folder.runs.get("progressive")
    seed = folder.paper_seed if folder.paper_seed is not None else folder.summary["seeds"][0]
    if run is None:
        return ["—"] * 6
    entry = next(e for e in run["per_seed"] if e["seed"] == seed)
    below = _below_full(entry, folder.n)
    record = folder.record("progressive", seed)
    ends = _stage_points(record)
    cost = _stage_cost(below, folder.n)
    iterations = [s["iterations"] for e in run["per_seed"] for s in _below_full(e, folder.n)]
    cells = [
        f"{len(below)}: Q = {below[0]['ratio']:.2f} to {below[-1]['ratio']:.2f}",
        format_number(cost, digits=1),
        _percent(ends[len(below) - 1]["test_accuracy"]),
        f"{min(iterations)} to {max(iterations)} (seeds {_seeds_text(run['seeds'])})",
    ]
    paper = entry.get("paper")
    if paper is None:
        return cells + ["n/a", "n/a"]
    reached = paper["ttt_evaluations"]
    if reached is None:
        return cells + [f"{_percent(paper['target'])}; not reached", "—"]
    cells.append(f"{_percent(paper['target'])}; {format_number(reached / folder.n, digits=1)}")
    phase = next(p["phase"] for p in record["points"] if p["evaluations"] == reached
                 and p["test_accuracy"] >= paper["target"] - 1e-12)
    stage = entry["stages"][int(phase[len("stage"):])]
    if stage["size"] == folder.n:
        cells.append(format_number(reached / folder.n - cost, digits=1))
    else:
        cells.append(f"none: reached in the stage at Q = {stage['ratio']:.2f}")
    return cells


def stages(paths):
    """The stages of `progressive` (reference seed): those below the full set, their cost
    (held-out checks included) and where they end; the cost to the paper target and how much
    of it the full-set stage spent; the iterations of the stages below the full set over
    every seed.

    Args:
        paths: Benchmark output folders.

    Returns:
        The markdown table.
    """
    folders = _folders(paths)
    titles = [
        "stages below the full set",
        "their cost, held-out checks included (epochs)",
        "test accuracy at the end of the last of them",
        "L-BFGS iterations of a stage below the full set",
        "paper target; `progressive`'s cost to it (epochs)",
        "of which the full-set stage (epochs)",
    ]
    columns = [_progressive_stage_cells(f) for f in folders]
    body = [[title] + [c[i] for c in columns] for i, title in enumerate(titles)]
    seed = folders[0].paper_seed
    return markdown_table([f"`progressive`, seed {seed}"] + [f.title for f in folders], body)


# ------------------------------------------------------------------------- headline


def _by_dataset(folders):
    """`{dataset title: (folder without copies, folder with copies)}`, in the order given."""
    out = {}
    for f in folders:
        pair = out.setdefault(DATASET_NAMES.get(f.summary["dataset"], f.summary["dataset"]),
                              [None, None])
        pair[1 if f.copies else 0] = f
    return out


def _progressive_headline(folder):
    run = folder.runs.get("progressive") if folder else None
    if run is None or run.get("paper") is None:
        return "n/a"
    own = format_ratio(run["paper"]["ttt_evaluations_ratio"])
    values = _cross_seed(run)
    reached = [v for v in values if v is not None]
    if not reached:
        return own
    spread = f"{format_ratio(min(reached))}–{format_ratio(max(reached))}"
    missed = len(values) - len(reached)
    return own + f" ({spread}{f', {missed} seeds not reached' if missed else ''})"


def best_user_route(folder):
    """The L-BFGS route with the smallest mean seconds ratio over the fastest Adam among
    those that reached Adam's target in at least one seed, as `(run, user figures)`, or
    `None`."""
    routes = [r for r in folder.summary["runs"]
              if r["kind"] in L_BFGS_ROUTES and r.get("user") and r["user"]["reached"]]
    if not routes:
        return None
    best = min(routes, key=lambda r: r["user"]["ttt_seconds_ratio"]["mean"])
    return best, best["user"]


def _user_headline(folder):
    best = best_user_route(folder) if folder else None
    if best is None:
        return "n/a" if folder is None else "not reached by any L-BFGS route"
    run, user = best
    return (f"{format_ratio(user['ttt_seconds_ratio']['mean'])}, `{run['run']}` "
            f"({user['reached']} of {user['seeds']} seeds)")


def _levelled_headline(pair):
    def text(folder):
        run = folder.runs.get("lbfgs_full") if folder else None
        if run is None:
            return "n/a"
        return "yes" if all(run["levelled_off"]) else "**no**"
    return " / ".join(text(f) for f in pair)


def headline(paths):
    """The front page's table: per dataset, without and with fixed copies, `progressive`'s
    paper-frame cost ratio (reference seed; in brackets the range over every seed against
    that reference), whether `lbfgs_full` levelled off, the smallest Q of one subset within
    the tolerance, and the best user-frame ratio with its route.

    Args:
        paths: Benchmark output folders, with and without `--augment_copies`.

    Returns:
        The markdown table, one column per dataset.
    """
    pairs = _by_dataset(_folders(paths))
    copies = max((f.copies for pair in pairs.values() for f in pair if f), default=0)
    tolerance = next(f for pair in pairs.values() for f in pair if f).summary["target_tolerance_pp"]
    rows = [("Q of the training set, without / with the copies",
             lambda p: " / ".join("—" if f is None else format_number(f.summary["q_extended"],
                                                                      digits=1) for f in p))]
    for label, index in (("without copies", 0), (f"with {copies} fixed copies", 1)):
        rows.append((f"paper frame: `progressive`'s cost over `lbfgs_full`'s, seed 0 (range "
                     f"over the seeds against seed 0's `lbfgs_full`), {label}",
                     lambda p, i=index: _progressive_headline(p[i])))
    rows.append(("`lbfgs_full` levelled off, without / with copies", _levelled_headline))
    for label, index in (("without copies", 0), ("with copies", 1)):
        rows.append((f"smallest Q of one subset within {tolerance:g} pp of `lbfgs_full`, "
                     f"{label}",
                     lambda p, i=index: "n/a" if p[i] is None else smallest_q_text(p[i])))
    for label, index in (("without copies", 0), ("with copies", 1)):
        rows.append((f"user frame: the best L-BFGS route's seconds over the fastest Adam's "
                     f"(seeds that reached Adam's target), {label}",
                     lambda p, i=index: _user_headline(p[i])))
    return _table(list(pairs.values()), "", rows, titles=list(pairs))


# ------------------------------------------------------------------ MNIST seconds


def _seed0(run):
    return run["per_seed"][0]


def _seconds_to_user(folder, name):
    run = folder.runs.get(name)
    if run is None:
        return "—"
    user = _seed0(run).get("user")
    if user is None or user["ttt_seconds"] is None:
        return "not reached"
    return f"{user['ttt_seconds']:.1f} s ({format_ratio(user['ttt_seconds_ratio'])})"


def _paper_cell(folder, name):
    """The paper-frame ratios of run `name` of a folder ("—" without it or `lbfgs_full`)."""
    if "lbfgs_full" not in folder.runs:
        return "—"
    return _runs_cell(folder, name, lambda r: _pair(r.get("paper")))


def _stage_seconds(folder, which):
    run = folder.runs.get("progressive")
    if run is None:
        return "—"
    stages_ = _seed0(run)["stages"]
    chosen = stages_[:2] if which == "first" else stages_[-1:]
    if which == "first":
        return " + ".join(f"{s['training_seconds']:.1f}" for s in chosen) + " s"
    last = chosen[0]
    return f"{last['iterations']} iterations, {last['evaluations']} evaluations, " \
           f"{last['training_seconds']:.1f} s"


def seed0_seconds(paths):
    """Seconds of seed 0 side by side, one column per folder of the same dataset and preset
    (e.g. two versions of the code, or two dtype policies): the user target, the fastest Adam
    and every route's seconds to it (over the fastest Adam's), the progressive routes'
    paper-frame ratios, the progressive stages' seconds and the final test accuracies.

    Args:
        paths: Benchmark output folders.

    Returns:
        The markdown table, one column per folder, named by the folder.
    """
    folders = _folders(paths)
    rows = [
        ("user target (`conventional`'s final test accuracy − 0.3 pp)",
         lambda f: _percent(f.summary["frames"]["user"]["0"]["target"])),
        ("fastest Adam: run, seconds to the target",
         lambda f: f"`{f.summary['frames']['user']['0']['baseline']}`, "
                   f"{f.summary['frames']['user']['0']['seconds']:.1f} s"),
        ("`conventional` (batch 128): seconds to the target (over the fastest Adam's)",
         lambda f: _seconds_to_user(f, "conventional")),
        ("`progressive`: the same", lambda f: _seconds_to_user(f, "progressive")),
        ("`progressive_adam`: the same", lambda f: _seconds_to_user(f, "progressive_adam")),
        ("paper frame: `progressive`'s cost (time) to `lbfgs_full`'s target over its own",
         lambda f: _paper_cell(f, "progressive")),
        ("paper frame: `progressive_adam`'s, the same", lambda f: _paper_cell(f, "progressive_adam")),
        ("`progressive`: seconds of its first two stages", lambda f: _stage_seconds(f, "first")),
        ("`progressive`: its last stage (the full set)", lambda f: _stage_seconds(f, "last")),
        ("final test accuracy: `conventional` / `progressive` / `progressive_adam`",
         lambda f: " / ".join(format_number(_seed0(f.runs[n])["final_test_accuracy"], 100.0)
                              if n in f.runs else "—"
                              for n in ("conventional", "progressive", "progressive_adam"))
         + " %"),
    ]
    return _table(folders, "seed 0", rows,
                  titles=[f"`{overview.folder_name(f.path)}`" for f in folders])


# -------------------------------------------------------------------- provenance


def _runs_text(records):
    seeds = {}
    for r in records:
        seeds.setdefault(r["run"], []).append(r["seed"])
    return ", ".join(f"{name} ({_seeds_text(s)})" for name, s in seeds.items())


def provenance_table(paths):
    """Which code made every run of the folders, and when: one row per folder, day and code
    version, with the runs and their minutes (training and evaluation, summed over the runs;
    tracing included, start-up and data loading not).

    Args:
        paths: Benchmark output folders.

    Returns:
        The markdown table.
    """
    body = []
    for path in paths:
        folder = Folder(path)
        records = sorted((folder.record(r["run"], s) for r in folder.summary["runs"]
                          for s in r["seeds"]), key=stats.report_order)
        groups = {}
        for r in records:
            groups.setdefault((r["started"][:10], provenance.source_label(r)), []).append(r)
        for (day, code), group in sorted(groups.items()):
            minutes = sum(runlog.run_seconds(r) for r in group) / 60.0
            body.append([f"`{overview.folder_name(path)}`", day, f"`{code}`",
                         _runs_text(group), f"{minutes:.0f}"])
    header = ["folder", "started", "code (keras_subset/benchmarks digests)", "runs (seeds)",
              "minutes in the runs"]
    return markdown_table(header, body)
