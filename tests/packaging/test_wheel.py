"""The package as a user installs it: the sdist builds a plain wheel with no C compiler, and that wheel in a
fresh virtual environment, with the runtime lock only, gives a working ``xgate``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from xgate import __version__

ROOT = Path(__file__).resolve().parents[2]


def _uv() -> str:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed (make .venv/.installed installs it)")
    return uv


def _locked_names(lock: Path) -> set[str]:
    return {line.split("==")[0].lower() for line in lock.read_text().splitlines() if "==" in line}


_IMPORT_EVERY_MODULE = """
import importlib, pkgutil, xgate
names = [m.name for m in pkgutil.walk_packages(xgate.__path__, "xgate.")]
for name in names:
    if name not in ("xgate.middleware.django", "xgate.middleware.flask") and not name.endswith(".__main__"):
        importlib.import_module(name)
print(len(names))
"""


@pytest.mark.timeout(600)
def test_the_sdist_builds_a_plain_wheel_that_installs_and_maps_the_example(tmp_path: Path) -> None:
    uv = _uv()
    # no compiler and the mypyc hook not asked for: the build must not need one
    env = {k: v for k, v in os.environ.items() if k not in ("HATCH_BUILD_HOOKS_ENABLE", "VIRTUAL_ENV")}
    env["CC"] = "/bin/false"
    subprocess.run([uv, "build", "-q", "--out-dir", str(tmp_path / "dist"), str(ROOT)], env=env, check=True)
    [sdist] = (tmp_path / "dist").glob("xgate-*.tar.gz")
    [wheel] = (tmp_path / "dist").glob("xgate-*.whl")
    assert sdist.name == f"xgate-{__version__}.tar.gz"
    assert wheel.name == f"xgate-{__version__}-py3-none-any.whl"
    assert not [n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".so")]

    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], env=env, check=True)
    python = venv / "bin" / "python"
    lock = ROOT / "requirements.lock"
    install = [uv, "pip", "install", "-q", "--python", str(python), "-c", str(lock), str(wheel)]
    subprocess.run(install, env=env, check=True)
    frozen = subprocess.run(
        [uv, "pip", "freeze", "--python", str(python)], env=env, check=True, capture_output=True, text=True
    ).stdout
    installed = {re.split(r"==| @ ", line)[0].lower() for line in frozen.splitlines() if line}
    # the runtime dependencies only: no test or bench tool came along
    assert installed - {"xgate"} <= _locked_names(lock), installed - _locked_names(lock)
    assert not installed & {"pytest", "hypothesis", "mypy", "ruff", "psutil", "facebook-business"}

    xgate = venv / "bin" / "xgate"
    version = subprocess.run([xgate, "--version"], check=True, capture_output=True, text=True, cwd=tmp_path)
    assert version.stdout.strip() == f"xgate {__version__}"
    mapped = subprocess.run(
        [xgate, "map", ROOT / "examples/purchase.json", "--config", ROOT / "examples/xgate.toml", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert mapped.returncode == 0, mapped.stderr
    [item] = json.loads(mapped.stdout)
    assert item["pixel_id"] == "o8z6j" and item["body"]["conversions"][0]["price_currency"] == "EUR"
    # every module imports with the runtime lock alone (the console's jinja2 was once missing from it), but
    # the integrations for frameworks the user brings (xgate.middleware.django, .flask) and `python -m xgate`
    imports = subprocess.run([python, "-c", _IMPORT_EVERY_MODULE], capture_output=True, text=True)
    assert imports.returncode == 0, imports.stdout + imports.stderr
    assert int(imports.stdout) > 50
    # the code that ran is the wheel's, not this checkout's sources
    where = subprocess.run(
        [python, "-c", "import xgate; print(xgate.__file__)"], check=True, capture_output=True, text=True
    )
    assert str(venv) in where.stdout
