"""Every `python3 -m benchmarks.<script> ...` command printed in README.md, docs/*.md and
benchmarks/README.md names a module that exists, and its arguments pass the script's own
parsing and checks, without running anything heavy.

The commands are read from the pages' code blocks and code spans. A script with absl flags
runs its `__main__` block with `absl.app.run` replaced: the flags are parsed as the script
parses them and, for the dataset scripts, `cli.main` builds the `Config` (`make_config`'s
checks) while `cli.run`, which would load the data and train, only records it. A script with
an argparse `parser()` parses the arguments with it, and the results folders it names must
exist. `examples/` scripts read `sys.argv` themselves: only their existence is checked.
"""

import glob
import importlib
import os
import re
import runpy
import shlex
from unittest import mock
import warnings

from absl import flags
import pytest

from benchmark_helpers import REPO
from benchmark_helpers import source_flags

# Every test of this file is quick (flags are parsed, nothing runs): all in the fast tier.
pytestmark = pytest.mark.fast

PAGES = ["README.md", "benchmarks/README.md"] + sorted(
    os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "*.md")))
FENCED = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)
SPAN = re.compile(r"`([^`]+)`")
COMMAND = re.compile(r"\bpython3? -m ((?:benchmarks|examples)\.\w+)(.*)")
SHELL_END = re.compile(r"\s(?:&&|\|\||;|\||>|2>|#)\s.*")
HELP_FLAGS = {"--help", "--helpfull", "--helpshort"}


def snippets(text):
    """The code of a page: every logical line of its fenced blocks, every code span."""
    out = []
    for block in FENCED.findall(text):
        out += block.replace("\\\n", " ").splitlines()
    out += [span.replace("\n", " ") for span in SPAN.findall(FENCED.sub(" ", text))]
    return out


def commands(page):
    """`(module, arguments, command text)` of every `python -m` command on a page."""
    with open(os.path.join(REPO, page)) as f:
        text = f.read()
    found = []
    for snippet in snippets(text):
        match = COMMAND.search(snippet)
        if match:
            rest = SHELL_END.sub("", " " + match.group(2)).strip()
            found.append((match.group(1), _expand(shlex.split(rest)), match.group(0).strip()))
    return found


def _expand(args):
    """Shell globs expanded against the repository root (`docs/results/*/`)."""
    out = []
    for arg in args:
        matches = sorted(glob.glob(os.path.join(REPO, arg))) if set("*?[") & set(arg) else []
        out += [os.path.relpath(m, REPO) + ("/" if arg.endswith("/") else "") for m in matches]
        out += [] if matches else [arg]
    return out


ALL = list({(page, module, tuple(args), text): None for page in PAGES
             for module, args, text in commands(page)})
"""`(page, module, arguments, command text)` of every distinct command of every page."""


class _DataAsked(Exception):
    """A script asked for its data: its flags and settings passed their checks."""


def parse_like_the_script(module, args):
    """Runs `module`'s `__main__` block with `app.run` parsing the flags only; returns the
    `Config` a dataset script built, else `None`. The flags it defined are removed after."""
    before, built = set(flags.FLAGS), {}

    def app_run(main, argv=None, flags_parser=None):
        try:  # app.run's own parsing ends the script on a flag error, so does this one
            remaining = (flags_parser or flags.FLAGS)([module] + [a for a in args
                                                                  if a not in HELP_FLAGS])
        except flags.Error as e:
            raise SystemExit(f"ERROR: {e}") from None
        if "cli" in main.__globals__:  # a dataset script: cli.main builds and checks the Config
            try:
                main(remaining)
            except _DataAsked:  # past its checks (the Q-curve's), where it would load the data
                built.update(config="checked")

    def load_dataset(*args, **kwargs):
        raise _DataAsked()

    try:
        with mock.patch("absl.app.run", app_run), \
                mock.patch("benchmarks.cli.run", lambda config, _: built.update(config=config)), \
                mock.patch("benchmarks.datasets.load_dataset", load_dataset), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a module run again as __main__
            runpy.run_module(module, run_name="__main__")
    finally:
        for name in set(flags.FLAGS) - before:
            delattr(flags.FLAGS, name)
        flags.FLAGS.unparse_flags()
    return built.get("config")


def check_command(module, args):
    """Fails (`pytest.fail`) when `python3 -m module args` would not get past its parsing."""
    path = os.path.join(REPO, *module.split(".")) + ".py"
    if not os.path.exists(path):
        pytest.fail(f"no module {module} ({os.path.relpath(path, REPO)})")
    if module.startswith("examples."):
        return None
    with open(path) as f:
        source = f.read()
    if re.search(r"^def parser\(", source, re.MULTILINE):  # argparse: no absl flags to define
        importlib.import_module(module).parser().parse_args(args)
        paths = [a.split("=", 1)[-1] for a in args if "docs/" in a]
        missing = [p for p in paths if not os.path.exists(os.path.join(REPO, p))
                   and not os.path.isdir(os.path.join(REPO, os.path.dirname(p)))]
        assert not missing, f"{module}: no such path {missing}"
        return None
    names, groups = source_flags(source, module.split(".")[-1])
    if not names and not groups:
        assert args == [], f"{module} takes no arguments"
        return None
    return parse_like_the_script(module, args)


def test_the_pages_print_commands_of_every_kind():
    modules = {module for _, module, _, _ in ALL}
    assert {"benchmarks.mnist", "benchmarks.cifar10", "benchmarks.cifar100", "benchmarks.engine",
            "benchmarks.first_step", "benchmarks.overview", "benchmarks.docs_tables",
            "benchmarks.resummarize", "examples.batchnorm_dropout"} <= modules


@pytest.mark.parametrize("page, module, args, text", ALL,
                         ids=[f"{page}: {text[:90]}" for page, _, _, text in ALL])
def test_every_printed_command_parses(page, module, args, text):
    try:
        check_command(module, list(args))
    except SystemExit as e:  # absl's or the script's own `ERROR: ...`, argparse's usage
        pytest.fail(f"{page}: `{text}` exits: {e}")


def test_a_dataset_script_command_builds_its_config():
    config = check_command("benchmarks.mnist", ["--preset=cpu", "--augment", "--seeds=3"])
    assert (config.dataset, config.augment, config.seeds, config.augment_copies) == (
        "mnist", True, 3, 4)
    assert "augment" not in flags.FLAGS  # the script's flags are gone again


def test_a_wrong_flag_or_value_fails_the_check():
    with pytest.raises(SystemExit, match="ERROR: .*--growth"):
        check_command("benchmarks.cifar10", ["--growth=1"])
    with pytest.raises(SystemExit, match="no_such_flag"):
        check_command("benchmarks.engine", ["--no_such_flag=1"])
    with pytest.raises(SystemExit):
        check_command("benchmarks.docs_tables", [])  # --write or --check is required
    with pytest.raises(pytest.fail.Exception, match="no module benchmarks.q_curves"):
        check_command("benchmarks.q_curves", [])


def test_commands_are_read_from_code_blocks_and_spans(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("Run `python3 -m benchmarks.overview docs/results/*/` or\n```bash\n"
                    "KERAS_SUBSET_DATA_DIR=data python3 -m benchmarks.mnist --preset=cpu \\\n"
                    "  --seeds=3  # a comment\n```\nand `python -m benchmarks.engine\n"
                    "--models=mlp` (wrapped).\n")
    found = {module: args for module, args, _ in commands(str(page))}
    assert found["benchmarks.mnist"] == ["--preset=cpu", "--seeds=3"]
    assert found["benchmarks.engine"] == ["--models=mlp"]
    assert "docs/results/mnist/" in found["benchmarks.overview"]
