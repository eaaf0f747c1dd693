"""``ProjectView``: timeline with preview, review table, upload and export in one view."""

from __future__ import annotations

from .base import SapariWidget


class ProjectView(SapariWidget):
    """ProjectView(client, project_id): the ``project`` view, live from the job server."""

    VIEW = "project"
