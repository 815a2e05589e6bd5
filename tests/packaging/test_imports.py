"""Every xgate module imports on its own, first, in a fresh interpreter.

An import cycle shows only when a module of the cycle is the first one imported (``import xgate.tag.routes``
failed that way while every test that imported ``xgate.collect`` first passed). Each module is imported
by a child forked from a process that has loaded the third-party libraries but no xgate module, so the
check costs milliseconds a module instead of an interpreter start each.
"""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import xgate

#: imported once by the parent, before any fork: what the children then need not import again
_PRELOAD = "fastapi, pydantic, starlette, httpx, psycopg, psycopg_pool, typer, jinja2, orjson, uvicorn"

_CHILD = """
import importlib, os, sys, traceback
import {preload}
failed = []
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        failed.append(name)
print("FAILED " + " ".join(failed) if failed else "OK")
"""


def _modules() -> list[str]:
    root = Path(xgate.__file__).parent
    names = ["xgate"]
    for info in pkgutil.walk_packages([str(root)], prefix="xgate."):
        if not info.name.endswith("__main__"):
            names.append(info.name)
    return sorted(names)


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    modules = _modules()
    assert "xgate.tag.routes" in modules and len(modules) > 50
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD.format(preload=_PRELOAD), *modules],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "OK", done.stdout + done.stderr[-3000:]
