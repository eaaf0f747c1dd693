"""The Panel adapter (sapari_nb/panel_app.py) over ProjectState, without a browser: params
mirror the state, the `_outbox` route runs each action once in order, server news arrives."""

from __future__ import annotations

from typing import Any

import pytest

from sapari_nb import Client

from .conftest import Ready, wait_until

pytest.importorskip("panel")

from sapari_nb.panel_app import ProjectView, build_page  # noqa: E402


def status_of(view: ProjectView, edit_id: str) -> Any:
    return next(e["status"] for e in view.edits if e["id"] == edit_id)


def test_params_mirror_state_and_outbox_runs_once_in_order(wclient: Client, ready: Ready) -> None:
    view = ProjectView(wclient, ready.project_id)
    try:
        values = view.state.values()
        for name in ("project", "server", "clips", "peaks", "peaks_meta", "words", "edits",
                     "analysis", "export_state", "export_settings", "uploads"):
            assert getattr(view, name) == values[name], name
        assert view.view == "project" and len(view.peaks) > 0 and view.edits
        edit = view.edits[0]["id"]
        first = "rejected" if status_of(view, edit) != "rejected" else "accepted"
        view._outbox = [{"seq": 1, "type": "set_status", "ids": [edit], "status": first}]
        wait_until(lambda: view._acked == 1, 10)
        assert {e.id: e.status for e in wclient.edits(ready.project_id)}[edit] == first
        # The server's event comes back through the stream to the param.
        wait_until(lambda: status_of(view, edit) == first, 5)

        # A merged browser change still carries seq 1: only seq 2 and 3 run.
        flip = "accepted" if first == "rejected" else "rejected"
        view._outbox = [{"seq": 1, "type": "set_status", "ids": [edit], "status": flip},
                        {"seq": 2, "type": "seek", "t": 1.5},
                        {"seq": 3, "type": "seek", "t": 2.0}]
        wait_until(lambda: view._acked == 3, 10)
        assert {e.id: e.status for e in wclient.edits(ready.project_id)}[edit] == first
        wait_until(lambda: view.playhead == 2.0, 5)

        # A change from code (another client call) shows without any browser action.
        (wclient.accept if first == "rejected" else wclient.reject)(edit)
        wait_until(lambda: status_of(view, edit) == flip, 5)
    finally:
        view.close()
    assert view.state.closed


def test_page_opens_the_named_project(wclient: Client, ready: Ready) -> None:
    page = build_page(wclient, ready.project_id)
    views = [o for o in page.select(ProjectView)]
    try:
        assert len(views) == 1 and views[0].project["id"] == ready.project_id
    finally:
        for v in views:
            v.close()
