"""The FastAPI app factory. ``create_app()`` with no arguments is the embedded server."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from .api import validation_errors
from .api.routes import (
    account,
    analysis,
    assets,
    clips,
    edits,
    events,
    exports,
    imports,
    jobs,
    projects,
    storage,
    timeline,
)
from .db.migrate import upgrade
from .embedded import ensure_local_user
from .queue.jobs import new_error_id
from .queue.tasks import bind_tasks
from .runtime import Runtime, build_runtime
from .settings import Settings, get_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    settings = settings or (runtime.settings if runtime else get_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = runtime or await anyio.to_thread.run_sync(build_runtime, settings)
        # The API enqueues jobs, so it needs the tasks bound (the runtime leaves that to us).
        await anyio.to_thread.run_sync(bind_tasks, rt)
        await anyio.to_thread.run_sync(upgrade, settings.resolved_database_url)
        app.state.runtime = rt
        if settings.local_user:
            await anyio.to_thread.run_sync(ensure_local_user, rt)
        consumer = None
        if settings.embedded_workers > 0:
            from .queue.consumer import start_embedded_consumer

            consumer = await anyio.to_thread.run_sync(
                start_embedded_consumer, rt, settings.embedded_workers)
        # Everything alive now (modules, the runtime; in a notebook, the kernel's whole heap)
        # lives as long as the server: take it out of the collector's full passes, which
        # otherwise hold the GIL for 0.2-0.3 s on a big heap and stall every request.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if consumer is not None:
                await anyio.to_thread.run_sync(lambda: consumer.stop(graceful=True))
            await rt.aclose()
            if runtime is None:
                rt.close()

    app = FastAPI(title="sapari-nb job server", version="0.1.0", lifespan=lifespan)
    validation_errors.install(app)
    if settings.cors_origins or settings.cors_origin_regex:
        # Widgets move media bytes from the browser: signed PUTs and ranged GETs. No
        # credentials: the API's token never leaves the kernel, signed URLs carry their own.
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins,
            allow_origin_regex=settings.cors_origin_regex or None,
            allow_methods=["GET", "PUT", "HEAD", "OPTIONS"], allow_headers=["*"],
            expose_headers=["ETag", "Content-Length", "Content-Range", "Accept-Ranges"])
    for module in (projects, clips, analysis, edits, exports, timeline, jobs, events):
        app.include_router(module.router)
    app.include_router(imports.router)  # issue 15: import from URL
    app.include_router(assets.router)  # issue 15: asset edits (trim, loudness)
    app.include_router(account.router)  # issue 15: PATCH /me (export mail opt-in)
    if settings.resolved_storage_url.startswith("file:"):
        app.include_router(storage.router)

    @app.get("/health", tags=["meta"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The exception's text may hold SQL, parameters or server paths: it goes to the
        # log only, under an id the user can quote.
        error_id = new_error_id()
        log.error("unhandled error on %s %s, error id %s", request.method, request.url.path,
                  error_id, exc_info=exc)
        return JSONResponse(status_code=500, content={
            "detail": f"internal error (error id {error_id}): the server log has the details"})

    return app

