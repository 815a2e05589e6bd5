"""The hot path that the wheel compiles with mypyc: the list in pyproject.toml and the runtime's agree, and
a run that expects the compiled build (``make test``'s second pass) really runs it."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from xgate.runtime import HOT_MODULES, build_flavour, compiled_modules

ROOT = Path(__file__).resolve().parents[2]


def _module_name(path: str) -> str:
    return path.removeprefix("src/").removesuffix(".py").replace("/", ".")


def test_the_wheel_compiles_exactly_the_hot_modules() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    hook = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["hooks"]["mypyc"]
    assert sorted(_module_name(p) for p in hook["include"]) == sorted(HOT_MODULES)
    assert hook["enable-by-default"] is False  # editable installs stay plain Python


def test_each_pass_runs_the_build_it_expects() -> None:
    if os.environ.get("XGATE_EXPECT_COMPILED"):  # make test's second pass, in .venv-native
        assert compiled_modules() == list(HOT_MODULES)
        assert build_flavour() == "compiled (mypyc)"
    else:  # the editable install: the sources themselves
        assert compiled_modules() == []
        assert build_flavour() == "plain Python"
