"""The one factory: settings in, every backend out. Nothing else branches on the backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from huey import Huey
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.orm import Session, sessionmaker

from . import threads
from .db.engine import async_sessions, make_async_engine, make_sync_engine, sync_sessions
from .events.bus import EventBus, make_event_bus
from .queue.factory import make_queues
from .settings import Settings
from .storage.base import Storage
from .storage.factory import make_storage


@dataclass
class Runtime:
    settings: Settings
    storage: Storage
    bus: EventBus
    # One Huey per queue ("heavy", "light"); queue.tasks.QUEUE_OF routes job kinds to them.
    queues: dict[str, Huey]
    sync_engine: Engine
    sync_session: sessionmaker[Session]
    # The API's async engine is made lazily: workers never need it.
    _async_engine: AsyncEngine | None = None
    _async_session: async_sessionmaker | None = None
    # Filled by queue.tasks.bind_tasks at the entry points (app start, worker).
    tasks: dict[str, Any] = field(default_factory=dict)

    @property
    def async_session(self) -> async_sessionmaker:
        if self._async_session is None:
            self._async_engine = make_async_engine(self.settings.resolved_database_url)
            self._async_session = async_sessions(self._async_engine)
        return self._async_session

    async def aclose(self) -> None:
        if self._async_engine is not None:
            await self._async_engine.dispose()

    def close(self) -> None:
        self.sync_engine.dispose()
        self.bus.close()
        for huey in self.queues.values():
            huey.storage.close()


def build_runtime(settings: Settings) -> Runtime:
    """Every backend, with no tasks bound: entry points call ``queue.tasks.bind_tasks``."""
    # Size native thread pools (Whisper, VAD, OpenMP, BLAS) to this process's cores and the
    # jobs it runs at once, before any of them loads (threads.py).
    threads.configure_environment(max(1, settings.embedded_workers))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_sync_engine(settings.resolved_database_url)
    rt = Runtime(
        settings=settings,
        storage=make_storage(settings),
        bus=make_event_bus(settings.events_url),
        queues=make_queues(settings.resolved_queue_url, settings.queue_name),
        sync_engine=engine,
        sync_session=sync_sessions(engine),
    )
    return rt
