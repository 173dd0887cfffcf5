"""Tables of the side scripts' JSON files for the docs: engine speed, chunk sizes, first step,
iteration profile, bfloat16, fixed copies, and where each file came from.

Each public function takes the files a page's generated block names (see
`benchmarks.docs_tables`) and returns a markdown table. The files are the last line a side
script printed (`benchmarks.engine`, `first_step`, `iteration_profile`, `bfloat16`,
`copies_worth`), kept under `docs/results/`. Like `stats` and `report`, this module needs no
TensorFlow.

Example:

>>> print(chunk_sweep(["docs/results/engine/chunk_sweep.json"]))  # doctest: +SKIP
| examples per second of one evaluation, by chunk size | 64 | 128 | ...
"""

import json
import os

from benchmarks.report import format_number
from benchmarks.report import markdown_table

MODEL_NAMES = {"mnist": "MNIST CNN", "cifar10": "CIFAR-10 CNN", "cifar100": "CIFAR-100 CNN",
               "mlp": "MLP"}
"""How the tables name the engine's models (`benchmarks.engine --models`)."""


def _load(path):
    with open(path) as f:
        return json.load(f)


def _per_size(runs, cell):
    """"a / b / c": `cell(run)` of a model's runs at each K."""
    return " / ".join(cell(r) for r in runs)


def _fixed(key, digits=2):
    """A cell function: a run's `key` with `digits` decimals."""
    return lambda run: f"{run[key]:.{digits}f}"


def _model_rows(models, rows):
    """Rows of a table with one column per model: `rows` maps a title to `cell(model dict)`."""
    return [[title] + [cell(m) for m in models.values()] for title, cell in rows]


def engine(paths):
    """The engine's figures (`benchmarks.engine`'s last line), one column per model.

    Args:
        paths: One `engine.json`.

    Returns:
        The markdown table.
    """
    data = _load(paths[0])
    models = data["models"]
    sizes = " / ".join(f"{r['size']:,d}" for r in next(iter(models.values()))["runs"])
    rows = [
        (f"evaluations per iteration, K = {sizes}", lambda m: _per_size(
            m["runs"], _fixed("evaluations_per_iteration"))),
        ("the same with `line_search=\"hager_zhang\"` (TFP's own loop)", lambda m: _per_size(
            m["runs"], lambda r: f"{r['other_line_search']['evaluations_per_iteration']:.2f}")),
        ("our loss / SciPy's at equal evaluations", lambda m: _per_size(
            m["runs"], _fixed("scipy_loss_ratio", 3))),
        ("our seconds / SciPy's", lambda m: _per_size(m["runs"], _fixed("scipy_seconds_ratio"))),
        ("overhead: wall time / (evaluations × one evaluation)", lambda m: _per_size(
            m["runs"], _fixed("overhead_ratio"))),
        ("working memory (peak RSS minus the data), 10 K / K",
         lambda m: f"{m['working_memory_growth']:.3f}"),
        ("peak RSS, 10 K / K (the data included)", lambda m: f"{m['memory_growth']:.3f}"),
        (f"full-batch examples/s at K = {sizes.split(' / ')[-1]} / `model.fit`'s at its best "
         "batch size", lambda m: f"{m['full_batch_examples_per_second']:,.0f} / "
                                 f"{m['fit_examples_per_second']:,.0f} = "
                                 f"{m['throughput_ratio']:.2f}"),
        ("exponent of time per iteration in K", lambda m: f"{m['scaling_exponent']:.2f}"),
        ("progress bar after every iteration: cost per iteration at the smallest K",
         lambda m: f"+{100 * m['progress_overhead']:.1f} %"),
        ("`model.compile(optimizer=LBFGS())`: one `fit` step at the largest K / one chunked "
         "evaluation", lambda m: f"{m['dropin_ratio']:.2f}"),
    ]
    header = [f"{data['iterations']} iterations, line search `{data['line_search']}`, chunk "
              f"size `{data['chunk_size']}`"] + [MODEL_NAMES.get(k, k) for k in models]
    return markdown_table(header, _model_rows(models, rows))


def chunk_sweep(paths):
    """Examples per second of one full-batch evaluation by chunk size
    (`benchmarks.engine --chunk_sweep`), one row per model, and the commands that measured them.

    Args:
        paths: One `chunk_sweep.json`.

    Returns:
        The markdown table, then the commands.
    """
    data = _load(paths[0])
    sweep = data["chunk_sweep"]
    sizes = sorted({int(c) for m in sweep.values() for c in m
                    if c.isdigit() and c != "0"})
    header = ["model"] + [f"{c:,d}" for c in sizes] + ["one pass", "`\"auto\"` (its choice)"]
    body = []
    for name, rates in sweep.items():
        cells = [f"{rates[str(c)]:,.0f}" if str(c) in rates else "" for c in sizes]
        cells += [f"{rates['0']:,.0f}", f"{rates['auto']:,.0f} ({rates['auto_chunk_size']:,d})"]
        body.append([MODEL_NAMES.get(name, name)] + cells)
    commands = "\n".join(f"- `{c}`" for c in data.get("commands", []))
    return markdown_table(header, body) + f"\n\nMeasured on {data['date']} by:\n\n{commands}"


def first_step(paths):
    """Our loss over SciPy's at equal evaluations with SciPy's and PyTorch's first step, with
    and without the short-step rule (`benchmarks.first_step`), per model at each K.

    Args:
        paths: One `first_step.json`.

    Returns:
        The markdown table.
    """
    data = _load(paths[0])
    rules = {"search": "the line search decides (`--short_steps=search`)",
             "keep": "short steps kept (`--short_steps=keep`, the default)"}
    steps = {"scipy": "SciPy's first step (the default)", "pytorch": "PyTorch's first step"}
    models = list(dict.fromkeys(row["model"] for row in data["keep"]))
    body = []
    for rule, rule_text in rules.items():
        for step, step_text in steps.items():
            ratios = {m: [row[step]["scipy_loss_ratio"] for row in data[rule] if row["model"] == m]
                      for m in models}
            cells = [" / ".join(f"{r:.3f}" for r in ratios[m]) for m in models]
            worst = max(r for values in ratios.values() for r in values)
            body.append([f"{step_text}, {rule_text}", *cells, f"{worst:.3f}"])
    sizes = sorted({row["size"] for row in data["keep"]})
    header = [f"loss / SciPy's at equal evaluations, K = {' / '.join(f'{k:,d}' for k in sizes)}",
              *[MODEL_NAMES.get(m, m) for m in models], "worst"]
    return markdown_table(header, body)


ITERATION_PROFILE_ROWS = {
    "evaluation_ms": "one evaluation of the MLP at K",
    "direction_compact_ms": "the direction, compact form (the loop's)",
    "direction_two_loop_ms": "the direction, two-loop recursion (replaced)",
    "history_update_branch_ms": "the history update",
    "iteration_overhead_compact_ms": "the loop's own work per iteration, compact form",
    "iteration_overhead_two_loop_ms": "the same with the two-loop recursion",
}
"""The figures of `iteration_profile.json` the table shows, in milliseconds."""


def iteration_profile(paths):
    """Milliseconds of the parts of one L-BFGS iteration on the MLP's weights
    (`benchmarks.iteration_profile`), and the loop's work per iteration over one evaluation.

    Args:
        paths: One `iteration_profile.json`.

    Returns:
        The markdown table.
    """
    data = _load(paths[0])
    profile = data["iteration_profile"]
    body = [[text, f"{profile[key]:.2f}"] for key, text in ITERATION_PROFILE_ROWS.items()]
    for form in ("compact", "two_loop"):
        body.append([f"the loop's work per iteration / one evaluation ({form.replace('_', '-')})",
                     f"{profile[f'overhead_per_evaluation_{form}']:.2f}"])
    header = [f"P = {data['parameters']:,d}, {data['pairs']} pairs, K = {data['size']:,d}",
              "ms (or ratio)"]
    return markdown_table(header, body)


def bfloat16(paths):
    """L-BFGS and Adam under `mixed_bfloat16` against float32, side by side
    (`benchmarks.bfloat16`).

    Args:
        paths: One `bfloat16.json`.

    Returns:
        The markdown table, one column per dtype policy.
    """
    data = _load(paths[0])
    policies = list(data["lbfgs"])
    lbfgs = data["lbfgs"]
    rows = [
        ("L-BFGS: seconds of each run", lambda p: " and ".join(
            f"{r['seconds']:.1f}" for r in lbfgs[p])),
        ("L-BFGS: iterations, evaluations", lambda p: f"{lbfgs[p][0]['iterations']}, "
                                                     f"{lbfgs[p][0]['evaluations']}"),
        ("L-BFGS: final training loss (float32 model)",
         lambda p: f"{lbfgs[p][0]['float32_loss']:.2g}"),
        ("L-BFGS: test accuracy", lambda p: format_number(lbfgs[p][0]["test_accuracy"], 100.0,
                                                          suffix=" %")),
    ]
    for batch in sorted({k.rsplit("_b", 1)[1] for k in data["adam"]}, key=int):
        rows.append((f"Adam, batch {batch}: seconds per epoch",
                     lambda p, b=batch: f"{data['adam'][f'{p}_b{b}']['seconds_per_epoch']:.2f}"))
    body = [[title] + [cell(p) for p in policies] for title, cell in rows]
    ratios = ", ".join(f"{r:.2f}" for r in data["lbfgs_seconds_ratio"])
    adam = ", ".join(f"batch {b}: {r:.2f}" for b, r in data["adam_seconds_ratio"].items())
    body.append([f"seconds over `{policies[0]}`'s", "1", f"L-BFGS {ratios}; Adam {adam}"])
    return markdown_table(["", *(f"`{p}`" for p in policies)], body)


def copies_worth(paths):
    """Test accuracy of one subset with fixed augmented copies against subsets of as many
    original examples, and what one copy is worth (`benchmarks.copies_worth`).

    Args:
        paths: One `copies_worth.json`.

    Returns:
        The markdown table, one column per number of copies.
    """
    data = _load(paths[0])
    plain = data["originals"][0]
    copies = [plain] + data["with_copies"]
    originals = {r["examples"]: r for r in data["originals"]}
    def percent(run):
        return format_number(run["test_accuracy"], 100.0, suffix=" %")

    body = [
        [f"test accuracy, {plain['originals']:,d} originals + copies", *map(percent, copies)],
        ["test accuracy, as many originals", "—",
         *(f"{percent(originals[r['examples']])} ({r['examples']:,d})"
           for r in data["with_copies"])],
        ["one copy worth (originals, interpolated in log K)", "—",
         *(f"{r['originals_per_copy']:.2f}" for r in data["with_copies"])],
    ]
    header = [f"copies ({data['iterations']} L-BFGS iterations, width {data['width']})",
              *(str(r["copies"]) for r in copies)]
    return markdown_table(header, body)


def side_runs(paths):
    """Where each side script's JSON file came from: its command and date as the file
    records them ("not recorded" where it does not).

    Args:
        paths: JSON files of the side scripts.

    Returns:
        The markdown table, one row per file.
    """
    body = []
    for path in paths:
        data = _load(path)
        commands = data.get("commands") or ([data["command"]] if "command" in data else [])
        body.append([f"`{os.path.basename(path)}`",
                     "; ".join(f"`{c}`" for c in commands) or "not recorded",
                     data.get("date", "not recorded"), data.get("note", data.get("machine", ""))])
    return markdown_table(["file", "command", "date", "beside it"], body)
