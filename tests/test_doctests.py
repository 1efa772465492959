"""Every ``Examples`` section of the package holds runnable examples (pytest runs them with
``--doctest-modules`` over ``src/seglosses``: see ``[tool.pytest.ini_options]``)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re

import seglosses

_EXAMPLES = re.compile(r"^\s*Examples\n\s*-{8,}\n", re.M)


def _modules():
    for info in pkgutil.walk_packages(seglosses.__path__, "seglosses."):
        yield importlib.import_module(info.name)


def test_every_examples_section_runs_as_a_doctest():
    finder = doctest.DocTestFinder(exclude_empty=False)
    checked, prose_only = 0, []
    for module in _modules():
        for test in finder.find(module):
            if test.docstring and _EXAMPLES.search(test.docstring):
                checked += 1
                if not test.examples:
                    prose_only.append(test.name)
    assert checked > 30
    assert not prose_only, f"Examples sections without a runnable >>> example: {prose_only}"


def test_doctest_modules_is_configured():
    import tomllib
    from pathlib import Path

    cfg = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    opts = cfg["tool"]["pytest"]["ini_options"]
    assert "--doctest-modules" in opts["addopts"].split()
    assert "src/seglosses" in opts["testpaths"]
