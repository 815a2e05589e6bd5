"""Routes of the browser tag (``GET /tag.js``), mounted by the collector app. Filled by the browser area."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
