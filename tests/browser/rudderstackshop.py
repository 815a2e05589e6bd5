"""A shop that uses RudderStack's JavaScript SDK v3, the real library: ``@rudderstack/analytics-js`` from the
npm registry (:data:`RUDDERSTACK_JS`, pinned by version and integrity, see :mod:`npmkit`), served by the
shop itself, so the browser fetches nothing from RudderStack.

The page loads the package's *bundled* UMD build (``dist/npm/modern/bundled/umd``, what ``import {
RudderAnalytics } from "@rudderstack/analytics-js/bundled"`` gives a bundler): its plugins (the ``XhrQueue``
that sends to the data plane, the ``BeaconQueue``) are in the file. The package's default build loads every
plugin, the ``XhrQueue`` included, from RudderStack's CDN (``pluginsSDKBaseURL``) at ``load``, and the npm
tarball holds no copy of them to serve locally. The source configuration RudderStack's control plane would
answer (``configUrl``, ``api.rudderstack.com/sourceConfig``) comes inline from ``getSourceConfig``
(:func:`source_config`): a source with no device-mode destination, so nothing is loaded from
``destSDKBaseURL`` either. :func:`loader` writes the page's ``<head>`` for ``segmentshop``'s shop app.
"""

from __future__ import annotations

import json
from typing import Any

from npmkit import NpmPackage

RUDDERSTACK_JS = NpmPackage(
    "@rudderstack/analytics-js",
    "3.34.1",
    "sha512-cci768CvaM64Wr/MDDtLF8K49aPy7TwwfwL9G1a2SSfgwL4XfVfGNVT//Mv8yph0a14pPc/Nf5HDWhVjAD5vQg==",
)
#: the build the shop serves, as ``/umd/index.js``
BUNDLED_UMD = "dist/npm/modern/bundled/umd"


def source_config(write_key: str) -> dict[str, Any]:
    """A source's configuration as RudderStack's control plane answers ``/sourceConfig`` for a JavaScript
    source without device-mode destinations, its error and metrics reporting (to the data plane's
    ``/rsaMetrics``) off."""
    return {
        "source": {
            "id": "2kUq6uRvb0CgkmcGJ8K6qxqOEc5",
            "name": "shop web",
            "writeKey": write_key,
            "enabled": True,
            "workspaceId": "2kUq5oF5wSjXbY9uLDs3WYBCnYU",
            "config": {"statsCollection": {"errors": {"enabled": False}, "metrics": {"enabled": False}}},
            "destinations": [],
        }
    }


def loader(write_key: str, data_plane_url: str, load_options: dict[str, Any]) -> str:
    """What the shop's bundle runs: ``new RudderAnalytics()`` (which makes itself
    ``window.rudderanalytics``), then ``load(write_key, data_plane_url, options)`` with the source
    configuration from ``getSourceConfig``."""
    config = json.dumps(source_config(write_key))
    return (
        '<script src="/umd/index.js"></script><script>'
        "new rudderanalytics.RudderAnalytics();"
        f"rudderanalytics.load({json.dumps(write_key)}, {json.dumps(data_plane_url)}, "
        f"Object.assign({json.dumps(load_options)}, "
        f"{{getSourceConfig: function () {{ return {config}; }}}}));"
        "</script>"
    )
