"""``Upload``: the upload view of a project (see ``SapariWidget`` for traits and actions)."""

from __future__ import annotations

from .base import SapariWidget


class Upload(SapariWidget):
    """Upload(client, project_id): the ``upload`` view, live from the job server."""

    VIEW = "upload"
