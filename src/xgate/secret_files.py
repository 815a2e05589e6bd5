"""Secrets as files: a folder whose files are named like environment variables (Docker and Compose secrets
under ``/run/secrets``, Kubernetes secret volumes), read into the environment before a command runs.

Every setting that names an environment variable (a source's ``write_key_env``, ``[server] admin_key_env``,
a destination's ``XGATE_X_…`` credentials, libpq's ``PGPASSWORD``) can then come from such a file: a file
``/run/secrets/XGATE_X_CONSUMER_KEY`` holding the key is the same as the variable. A variable already set
in the environment wins over its file. The folder is ``$XGATE_SECRETS_DIR`` (the container image sets
``/run/secrets``); unset, nothing is read.
"""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping
from pathlib import Path

SECRETS_DIR_ENV = "XGATE_SECRETS_DIR"

# what a shell accepts as a variable name; other files in the folder (a CA bundle, Kubernetes' ..data
# links) are not variables and are left alone
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SecretFileError(ValueError):
    """A secret file could not be read; the message names the file, never its content."""


def read_secret_files(directory: str | Path, environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Set ``environ[NAME]`` (default ``os.environ``) from each file ``directory/NAME`` whose name is a
    variable name and that is not already set, its text less one trailing line break.

    Returns the names set, sorted. A missing folder sets nothing. Raises :class:`SecretFileError` for a
    file that cannot be read or is not UTF-8 text.
    """
    env = os.environ if environ is None else environ
    folder = Path(directory)
    if not folder.is_dir():
        return []
    names: list[str] = []
    for path in sorted(folder.iterdir()):
        if not _NAME.match(path.name) or path.name in env or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise SecretFileError(f"cannot read secret file {path}: {e.strerror}") from None
        except UnicodeDecodeError:
            raise SecretFileError(f"secret file {path} is not UTF-8 text") from None
        env[path.name] = text.removesuffix("\n").removesuffix("\r")
        names.append(path.name)
    return names


def read_secrets_dir_from_env(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """:func:`read_secret_files` on ``$XGATE_SECRETS_DIR`` when it is set; ``[]`` otherwise."""
    env = os.environ if environ is None else environ
    directory = env.get(SECRETS_DIR_ENV)
    return read_secret_files(directory, env) if directory else []
