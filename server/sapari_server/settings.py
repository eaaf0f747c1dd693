"""All settings in one place (pydantic-settings, ``SAPARI_`` prefix).

No setting at all gives the embedded default: everything under one data folder.
"""

from __future__ import annotations

import ipaddress
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    return Path.home() / ".sapari-nb"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SAPARI_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    # URL-style backend choices; empty means the embedded default under data_dir.
    database_url: str = ""
    storage_url: str = ""
    queue_url: str = ""
    events_url: str = ""
    # Where clients reach this server; signed URLs of the local storage point here.
    public_url: str = "http://127.0.0.1:8000"
    # HMAC key for signed URLs; generated once and kept in data_dir when unset.
    secret_key: str = ""

    # Create the "local" user and write its token to data_dir/token (single-person setups).
    local_user: bool = True

    quota_bytes: int = 20 * 1024**3
    max_upload_bytes: int = 10 * 1024**3
    signed_url_ttl: int = 3600
    # Huey consumer threads per queue (heavy and light) started inside the server process
    # (0: none; run `sapari-nb worker`).
    embedded_workers: int = 2
    # A running job whose heartbeat is older than this is taken as orphaned and re-queued.
    job_stale_after: float = 60.0
    sse_keepalive: float = 15.0

    # Browsers on these origins may call the server and PUT/GET signed URLs straight from a
    # notebook page (CORS). Loopback origins are allowed by default: a JupyterLab on
    # another port of the same machine. Add e.g. ["https://hub.example.org"] (JSON in
    # SAPARI_CORS_ORIGINS) for a remote page; an empty regex turns the default off.
    cors_origins: list[str] = Field(default_factory=list)
    cors_origin_regex: str = r"^https?://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$"

    # Storage lifecycle: soft-deleted rows stay restorable this long, then a periodic task
    # (and `sapari-nb gc`) removes the objects only they own and frees the quota.
    retention_days: float = 7.0
    # Job bounds: a job may run this long plus a multiple of its media's duration.
    job_time_limit: float = 600.0
    job_time_limit_per_media_second: float = 20.0
    # Exports never exceed the source's size unless asked, and then at most this factor.
    max_export_scale: float = 2.0

    # Speech. "auto": the OpenAI-compatible API when a key is set, else the local
    # faster-whisper model when installed, else none (silences only, said plainly).
    transcriber: Literal["auto", "openai", "local", "none"] = "auto"
    openai_api_key: str = ""
    openai_base_url: str = ""  # any OpenAI-compatible endpoint; empty: api.openai.com
    transcribe_model: str = "whisper-1"
    local_model_dir: str = ""  # a CTranslate2 Whisper model folder; empty: tiny.en if installed
    language: str | None = None
    # Judging takes. "auto": the LLM when a key is set, else transcript heuristics.
    take_detector: Literal["auto", "llm", "heuristic", "none"] = "auto"
    llm_model: str = "gpt-4o-mini"
    llm_base_url: str = ""  # e.g. https://api.deepseek.com; empty: openai_base_url
    llm_api_key: str = ""  # empty: openai_api_key
    openai_timeout: float = 120.0
    openai_max_retries: int = 4

    # Browser-review artifacts made while processing: a 360p proxy and a thumbnail sprite.
    # A headless batch (the CLI) can skip them; peaks and levels are always made.
    preview_artifacts: bool = True

    # Analysis defaults (each can be overridden per analysis run).
    # "vad": Silero voice activity, cut only where the loudness floor agrees;
    # "loudness": level threshold only. "auto" threshold: from the room's noise floor.
    silence_method: Literal["vad", "loudness"] = "vad"
    silence_threshold_db: float | Literal["auto"] = "auto"
    min_silence: float = 0.5
    padding: float = 0.1

    # -- object storage: S3/R2 and multipart uploads (issue 15 item 1, storage/s3.py) -----
    # Keys for SAPARI_STORAGE_URL=s3://…; both empty: boto3's chain (AWS_ACCESS_KEY_ID and
    # AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance role).
    storage_access_key: str = ""
    storage_secret_key: str = ""
    # Uploads at least this big travel as parts, each with its own signed URL (resumable);
    # parts are this big (S3/R2 take at least 5 MiB, at most 10 000 parts: it grows to fit).
    multipart_threshold: int = Field(default=64 * 1024**2, ge=1)
    multipart_part_size: int = Field(default=16 * 1024**2, ge=64 * 1024)
    # Workers download an S3 object to data_dir/scratch only for steps that need random
    # access; refuse objects above this many bytes there (0: only the free space decides).
    storage_scratch_max_bytes: int = Field(default=0, ge=0)

    # -- imports from URL, asset edits, email (issue 15 item 5) -----------------------------
    # Import from URL refuses loopback, link-local (cloud metadata), private, multicast and
    # unspecified addresses; allow them only where the server may fetch from its own network.
    import_allow_private: bool = False
    # Networks allowed even so (CIDRs, JSON list), e.g. ["10.0.5.7/32"] for an in-house server.
    import_allow_networks: list[str] = Field(default_factory=list)
    # Seconds to wait for an import's server to connect or to send the next bytes.
    import_timeout: float = 30.0
    # Mail on export completion or failure, to users who opted in (PATCH /me). No host: off.
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_tls: Literal["none", "starttls", "ssl"] = "starttls"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_sender: str = "sapari-nb@localhost"
    smtp_timeout: float = 20.0
    # A CA bundle (PEM) to check the SMTP server's certificate against; empty: the system's.
    smtp_ca_file: str = ""

    @field_validator("import_allow_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        # A typo here would otherwise surface as a failure of every import, not at start.
        for net in value:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"{net!r} is not a network: give CIDRs like \"10.0.5.7/32\" "
                                 "or \"fd00::/8\"") from None
        return value

    # -- job queues (issue 15 item 2, queue/factory.py) -----------------------------------
    # Queues are <queue_name>_heavy and <queue_name>_light (and their Redis keys): deployments
    # sharing one broker keep apart by name. RabbitMQ keeps results, schedule and locks in
    # the Redis named in the URL: SAPARI_QUEUE_URL=amqp://…/%2F?results=redis://…:6379/0.
    queue_name: str = "sapari"

    @cached_property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'sapari.db'}"

    @cached_property
    def resolved_storage_url(self) -> str:
        return self.storage_url or f"file://{self.data_dir / 'objects'}"

    @cached_property
    def resolved_queue_url(self) -> str:
        return self.queue_url or f"sqlite://{self.data_dir / 'queue.db'}"

    @cached_property
    def resolved_secret_key(self) -> str:
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret.key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()


def get_settings() -> Settings:
    return Settings()
