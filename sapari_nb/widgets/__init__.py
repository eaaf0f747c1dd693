"""The notebook widgets: anywidget adapters over the framework-free ``ProjectState``.

Names load lazily: ``from sapari_nb.widgets.state import ProjectState`` (what the Panel app
uses) never imports anywidget.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {"SapariWidget": "base", "Upload": "upload", "Timeline": "timeline",
          "EditReview": "review", "Export": "export", "ProjectView": "project",
          "ProjectState": "state"}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
