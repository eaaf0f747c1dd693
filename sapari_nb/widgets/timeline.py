"""``Timeline``: the timeline view of a project (see ``SapariWidget`` for traits and actions)."""

from __future__ import annotations

from .base import SapariWidget


class Timeline(SapariWidget):
    """Timeline(client, project_id): the ``timeline`` view, live from the job server."""

    VIEW = "timeline"
