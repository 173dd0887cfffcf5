"""Every flag of every script under benchmarks/ is documented in benchmarks/README.md, and every
flag documented there is defined.

The scripts are found, not listed: every `benchmarks/*.py` whose source defines flags (an absl
`DEFINE_*` call or an argparse `add_argument("--...")`) or calls a `define_flags()`. A module's
own flags are the literal names of those calls plus, when it has a `define_flags` function,
the flags that function defines in a fresh `flags.FlagValues()` (how `benchmarks.config` makes
one flag per `Config` field). benchmarks/README.md documents them in one section per module,
headed "Flags of `benchmarks.<module>`", in the first column of a table; a module whose script
calls another module's `define_flags()` (the dataset scripts call `config.define_flags()`) is
named in that module's section.
"""

import ast
import glob
import importlib
import os
import re

from absl import flags
import pytest

from benchmark_helpers import REPO
from benchmark_helpers import source_flags

# Every test of this file is quick: all in the fast tier.
pytestmark = pytest.mark.fast

SECTION = re.compile(r"^(#{2,4}) Flags of `benchmarks\.(\w+)`.*$", re.MULTILINE)
FLAG = re.compile(r"--(?:\[no\])?([a-z][a-z0-9_]*)")


def defined_flags(module_name, source):
    """A module's own flags: literal definitions, and those of its own `define_flags`."""
    names, _ = source_flags(source, module_name)
    tree = ast.parse(source)
    if any(isinstance(n, ast.FunctionDef) and n.name == "define_flags" for n in tree.body):
        values = flags.FlagValues()
        importlib.import_module(f"benchmarks.{module_name}").define_flags(values)
        names |= set(values)
    return names


def group_flags(module_name):
    """The flags `benchmarks.<module_name>.define_flags()` defines in a fresh `flags.FlagValues()`."""
    values = flags.FlagValues()
    importlib.import_module(f"benchmarks.{module_name}").define_flags(values)
    return set(values)


def scripts():
    """`{module: (own flags, modules whose define_flags() it calls)}` of benchmarks/*.py."""
    out = {}
    for path in sorted(glob.glob(os.path.join(REPO, "benchmarks", "*.py"))):
        module = os.path.splitext(os.path.basename(path))[0]
        with open(path) as f:
            source = f.read()
        _, groups = source_flags(source, module)
        groups -= {module}
        # A module's define_flags() that calls another's (q_curve's calls config's) defines the
        # other's flags too: those are documented in the other's section.
        own = defined_flags(module, source) - set().union(*map(group_flags, groups))
        if own or groups:
            out[module] = (own, groups)
    return out


def documented_flags(text):
    """`{module: (documented flags, section text)}` of the "Flags of" sections of a README."""
    out = {}
    headings = list(SECTION.finditer(text))
    for heading in headings:
        level = len(heading.group(1))
        rest = text[heading.end():]
        end = re.search(rf"^#{{1,{level}}} ", rest, re.MULTILINE)
        section = rest[:end.start()] if end else rest
        names = set()
        for line in section.splitlines():
            cells = line.split("|")
            if line.startswith("|") and len(cells) > 2 and not set(cells[1].strip()) <= set("-"):
                names |= set(FLAG.findall(cells[1]))
        out[heading.group(2)] = (names, heading.group(0) + section)
    return out


def mismatches(defined, documented):
    """The differences between the scripts' flags and the README's sections, in words.

    Args:
        defined: `scripts()`'s dict.
        documented: `documented_flags()`'s dict.

    Returns:
        One line per problem; empty when the README matches the code.
    """
    problems = []
    for module, (own, _) in defined.items():
        if own and module not in documented:
            problems.append(f"benchmarks.{module}: no section 'Flags of `benchmarks.{module}`'")
            continue
        names = documented.get(module, (set(), ""))[0]
        for flag in sorted(own - names):
            problems.append(f"benchmarks.{module}: --{flag} is defined but not documented")
        for flag in sorted(names - own):
            problems.append(f"benchmarks.{module}: --{flag} is documented but not defined")
    for module in sorted(set(documented) - set(defined)):
        problems.append(f"section of benchmarks.{module}, which defines no flags")
    for module, (_, groups) in defined.items():
        for group in sorted(groups):
            if f"benchmarks.{module}" not in documented.get(group, (set(), ""))[1]:
                problems.append(f"benchmarks.{module} takes the flags of benchmarks.{group}, "
                                f"whose section does not name it")
    return problems


def _readme():
    with open(os.path.join(REPO, "benchmarks", "README.md")) as f:
        return f.read()


def test_every_flag_of_every_script_is_documented_and_every_documented_flag_defined():
    defined = scripts()
    # The scripts are found in the sources: the dataset scripts through config.define_flags(),
    # the side scripts through their own definitions.
    assert {"config", "mnist", "cifar100", "engine", "first_step", "copies_worth", "bfloat16",
            "iteration_profile", "overview", "docs_tables", "q_curve"} <= set(defined)
    assert defined["q_curve"] == ({"dataset", "widths"}, {"config"})
    assert "eval_batch_size" in defined["config"][0] and "short_steps" in defined["first_step"][0]
    assert mismatches(defined, documented_flags(_readme())) == []


README = """
### Flags of `benchmarks.tool`: also `benchmarks.user`

| flag | meaning |
|---|---|
| `--alpha`, `--[no]beta` | documented |
"""

TOOL = """
from absl import flags
def define_flags(flag_values=flags.FLAGS):
    pass
flags.DEFINE_integer("alpha", 1, "A.")
flags.DEFINE_boolean("beta", True, "B.")
"""


def _defined(source):
    names, groups = source_flags(source, "tool")
    return {"tool": (names, set()), "user": (set(), {"tool"})}


def test_the_check_fails_for_an_undocumented_flag():
    source = TOOL + 'flags.DEFINE_string("gamma", "", "C.")\n'
    assert mismatches(_defined(source), documented_flags(README)) == [
        "benchmarks.tool: --gamma is defined but not documented"]


def test_the_check_fails_for_a_documented_flag_that_is_not_defined():
    readme = README.replace("`--alpha`,", "`--alpha`, `--delta`,")
    assert mismatches(_defined(TOOL), documented_flags(readme)) == [
        "benchmarks.tool: --delta is documented but not defined"]


def test_the_check_fails_for_a_script_without_a_section_or_not_named_in_its_flags_section():
    assert mismatches(_defined(TOOL), documented_flags(README)) == []
    assert mismatches(_defined(TOOL), {}) == [
        "benchmarks.tool: no section 'Flags of `benchmarks.tool`'",
        "benchmarks.user takes the flags of benchmarks.tool, whose section does not name it"]
    readme = README.replace(": also `benchmarks.user`", "")
    assert mismatches(_defined(TOOL), documented_flags(readme)) == [
        "benchmarks.user takes the flags of benchmarks.tool, whose section does not name it"]


def test_argparse_options_and_define_flags_calls_are_found():
    source = ("import argparse\nfrom benchmarks import config\np = argparse.ArgumentParser()\n"
              "p.add_argument('folders', nargs='+')\np.add_argument('--plot')\n"
              "config.define_flags()\n")
    assert source_flags(source, "x") == ({"plot"}, {"config"})
