"""``python -m xgate.healthcheck``: exit 0 when the local gateway answers ``GET /readyz`` with 200, 1
otherwise (the container image's ``HEALTHCHECK``; no curl needed).

The URL is ``$XGATE_HEALTHCHECK_URL`` when set, else ``http://127.0.0.1:PORT/readyz`` with PORT read from
``[server] port`` of ``$XGATE_CONFIG`` (else ``./xgate.toml``; default 8080). The configuration is only
read for the port, not validated: the gateway that runs has done that. It prints one line: ``ready`` or
the reason.
"""

from __future__ import annotations

import os
import sys
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

from xgate.config import CONFIG_ENV, DEFAULT_CONFIG_NAME, ServerSettings, read_toml_text

DEFAULT_PORT: int = ServerSettings.model_fields["port"].default
TIMEOUT_SECONDS = 4.0


def readyz_url(environ: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """The URL to probe (see the module's docstring); an unreadable configuration leaves the default port."""
    if url := environ.get("XGATE_HEALTHCHECK_URL"):
        return url
    port = DEFAULT_PORT
    try:
        text = read_toml_text(Path(environ.get(CONFIG_ENV) or DEFAULT_CONFIG_NAME))
        port = int(tomllib.loads(text).get("server", {}).get("port", DEFAULT_PORT))
    except (OSError, ValueError, TypeError, tomllib.TOMLDecodeError):
        pass
    return f"http://127.0.0.1:{port}/readyz"


def main() -> int:
    url = readyz_url()
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as answer:
            print("ready" if answer.status == 200 else f"{url}: {answer.status}")
            return 0 if answer.status == 200 else 1
    except urllib.error.HTTPError as e:
        print(f"{url}: {e.code} {e.read(500).decode('utf-8', 'replace')}")
    except (OSError, ValueError) as e:
        print(f"{url}: {getattr(e, 'reason', e)}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
