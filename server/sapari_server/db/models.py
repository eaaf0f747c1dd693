"""The metadata tables. Media bytes never live here, only object keys into storage."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, SoftDelete, Timestamps, id_column, utcnow


class User(Base, Timestamps, SoftDelete):
    __tablename__ = "users"
    id: Mapped[str] = id_column("usr")
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # None: the server-wide default quota applies.
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # Mail on export completion or failure goes here, only when the user opted in.
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    notify_email: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ApiToken(Base, Timestamps, SoftDelete):
    __tablename__ = "api_tokens"
    id: Mapped[str] = id_column("tok")
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    # Only a SHA-256 of the token is stored; the token itself is shown once.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="default")
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)


class Project(Base, Timestamps, SoftDelete):
    __tablename__ = "projects"
    id: Mapped[str] = id_column("prj")
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(500))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Clip(Base, Timestamps, SoftDelete):
    __tablename__ = "clips"
    id: Mapped[str] = id_column("clp")
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    filename: Mapped[str] = mapped_column(String(500))
    content_type: Mapped[str] = mapped_column(String(200), default="application/octet-stream")
    object_key: Mapped[str] = mapped_column(String(500), unique=True)
    declared_size: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # pending_upload -> uploaded -> processing -> ready | failed
    status: Mapped[str] = mapped_column(String(32), default="pending_upload", index=True)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    duration: Mapped[float | None] = mapped_column(Float, default=None)
    media_info: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # Set when the lifecycle purged this row's object from storage (its bytes are freed).
    purged_at: Mapped[datetime | None] = mapped_column(default=None)
    # Where the bytes came from when not uploaded: {"kind": "url", "url": ...} for an import,
    # {"kind": "asset_edit", "trim": ..., "loudness_lufs": ...} for an edited copy.
    origin: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # The clip an asset edit was made from (kept untouched).
    source_clip_id: Mapped[str | None] = mapped_column(ForeignKey("clips.id"), default=None)


class Artifact(Base, Timestamps, SoftDelete):
    """A derived file of a clip: analysis audio, waveform peaks, levels, proxy, thumbnails."""

    __tablename__ = "artifacts"
    id: Mapped[str] = id_column("art")
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    clip_id: Mapped[str] = mapped_column(ForeignKey("clips.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    object_key: Mapped[str] = mapped_column(String(500), index=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Set when the lifecycle purged this row's object from storage (its bytes are freed).
    purged_at: Mapped[datetime | None] = mapped_column(default=None)


class Transcript(Base, Timestamps, SoftDelete):
    __tablename__ = "transcripts"
    id: Mapped[str] = id_column("trn")
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    clip_id: Mapped[str] = mapped_column(ForeignKey("clips.id"), index=True)
    backend: Mapped[str] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(16), default=None)
    # [{"word", "start", "end", "probability"}, ...] in clip seconds.
    words: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class AnalysisRun(Base, Timestamps, SoftDelete):
    __tablename__ = "analysis_runs"
    id: Mapped[str] = id_column("anl")
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    status: Mapped[str] = mapped_column(String(32), default="queued")
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    job_id: Mapped[str | None] = mapped_column(String(32), default=None)


class Edit(Base, Timestamps, SoftDelete):
    """A proposed or manual cut: ``start``/``end`` are seconds of its clip."""

    __tablename__ = "edits"
    id: Mapped[str] = id_column("edt")
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    clip_id: Mapped[str] = mapped_column(ForeignKey("clips.id"), index=True)
    analysis_run_id: Mapped[str | None] = mapped_column(
        ForeignKey("analysis_runs.id"), default=None, index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text, default="")
    # proposed | accepted | rejected
    status: Mapped[str] = mapped_column(String(16), default="proposed")
    source: Mapped[str] = mapped_column(String(16), default="auto")
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Export(Base, Timestamps, SoftDelete):
    __tablename__ = "exports"
    id: Mapped[str] = id_column("exp")
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    status: Mapped[str] = mapped_column(String(32), default="queued")
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    object_key: Mapped[str | None] = mapped_column(String(500), default=None, index=True)
    size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    duration: Mapped[float | None] = mapped_column(Float, default=None)
    # The cuts as applied and the keep-segments as rendered, for the record.
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    job_id: Mapped[str | None] = mapped_column(String(32), default=None)
    # Set when the lifecycle purged this row's object from storage (its bytes are freed).
    purged_at: Mapped[datetime | None] = mapped_column(default=None)


class Job(Base, Timestamps, SoftDelete):
    __tablename__ = "jobs"
    id: Mapped[str] = id_column("job")
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    project_id: Mapped[str | None] = mapped_column(ForeignKey("projects.id"), default=None)
    kind: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(32), index=True)
    # queued | running | succeeded | failed
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class Event(Base):
    """The durable event log: ids increase monotonically, so SSE can replay after any id."""

    __tablename__ = "events"
    # 64-bit on PostgreSQL; SQLite's INTEGER PRIMARY KEY is already 64-bit (and must stay
    # INTEGER to be the rowid alias that autoincrements).
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    project_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
