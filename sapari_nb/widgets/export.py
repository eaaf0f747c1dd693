"""``Export``: the export view of a project (see ``SapariWidget`` for traits and actions)."""

from __future__ import annotations

from .base import SapariWidget


class Export(SapariWidget):
    """Export(client, project_id): the ``export`` view, live from the job server."""

    VIEW = "export"
