"""The chat page at ``/`` (its assets are mounted under ``/static`` by the app)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
PATHS = frozenset({"/"})

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    """The chat page, always revalidated (it changes with the gateway)."""
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})
