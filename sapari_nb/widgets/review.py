"""``EditReview``: the review view of a project (see ``SapariWidget`` for traits and actions)."""

from __future__ import annotations

from .base import SapariWidget


class EditReview(SapariWidget):
    """EditReview(client, project_id): the ``review`` view, live from the job server."""

    VIEW = "review"
