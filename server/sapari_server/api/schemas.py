"""Pydantic models at the API edge: what clients send and what they get back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Priority = Literal["interactive", "batch"]
EditStatus = Literal["proposed", "accepted", "rejected"]


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class In(BaseModel):
    """What clients send. Strict: `true` is not a size and `"0.5"` is not a number; unknown
    fields are refused so a misspelt setting is an error, not silently ignored. Floats must
    be finite (no NaN, no infinity)."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


# The longest recording a time may point into: a week, far past any real talk, so a number
# like 1e308 is refused at the edge instead of reaching the renderer.
MAX_SECONDS = 7 * 24 * 3600.0
Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS)]


class TokenOut(Out):
    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None


class UserOut(Out):
    id: str
    name: str
    quota_bytes: int
    used_bytes: int
    # Export mail (PATCH /me); shown where the route fills them.
    email: str | None = None
    notify_email: bool = False


class ProjectCreate(In):
    name: str = Field(min_length=1, max_length=500)
    settings: dict[str, Any] = Field(
        default_factory=dict, description="`analysis`: defaults for every analysis run of the "
                                          "project, checked like POST /analyze's body")

    @field_validator("settings")
    @classmethod
    def _known_settings(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Stored settings feed every later run: check them now, with the same rules as a
        # run's own, so a bad value is a 422 here and never a failed job later.
        unknown = set(value) - {"analysis"}
        if unknown:
            raise ValueError(f"unknown project settings {sorted(unknown)}: only 'analysis'")
        if value.get("analysis") is not None:
            analysis = AnalysisSettings.model_validate(value["analysis"])
            value = {**value, "analysis": analysis.model_dump(exclude_none=True)}
        return value


class ProjectOut(Out):
    id: str
    name: str
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class ClipOut(Out):
    id: str
    project_id: str
    filename: str
    position: int
    status: str
    error: str | None
    declared_size: int
    size: int | None
    duration: float | None
    media_info: dict[str, Any] | None
    created_at: datetime
    # Imported ({"kind": "url", ...}) or edited ({"kind": "asset_edit", ...}) clips say so.
    origin: dict[str, Any] | None = None
    source_clip_id: str | None = None


class PresignRequest(In):
    filename: str = Field(min_length=1, max_length=500)
    size: int = Field(gt=0, description="exact size in bytes of the file to upload")
    content_type: str = Field(default="application/octet-stream", max_length=200)
    multipart: bool | None = Field(
        default=None, description="upload in parts (resumable); default: from the server's "
                                  "multipart_threshold")


class CompletedPart(In):
    part_number: int = Field(ge=1, le=10_000)
    etag: str = Field(min_length=1, max_length=200, description="the part PUT's ETag header")


class ConfirmRequest(In):
    priority: Priority = Field(default="interactive", description="queue priority of the "
                               "clip's processing: batch runs yield to people waiting")
    upload_id: str | None = Field(default=None, max_length=1024,
                                  description="a multipart upload to complete first")
    parts: list[CompletedPart] | None = Field(
        default=None, max_length=10_000, description="every part with its ETag; omitted: "
                                                     "the parts the storage holds")


class MultipartOut(BaseModel):
    """A multipart upload: PUT each part to a URL from ``parts_url``, then confirm."""

    upload_id: str
    part_size: int = Field(description="bytes of every part but the last")
    part_count: int
    parts_url: str = Field(description="POST {part_numbers} here for signed part URLs; GET "
                                       "it for the parts the storage already holds")


class PresignOut(BaseModel):
    clip: ClipOut
    upload_url: str = Field(description="a single PUT of the whole file (also valid when "
                                        "multipart is offered)")
    method: Literal["PUT"] = "PUT"
    headers: dict[str, str]
    expires_at: datetime
    multipart: MultipartOut | None = None


class PartUrlsRequest(In):
    part_numbers: list[int] = Field(min_length=1, max_length=1000,
                                    description="1-based part numbers, any subset")
    upload_id: str | None = Field(default=None, max_length=1024)


class PartUrl(BaseModel):
    part_number: int
    url: str
    method: Literal["PUT"] = "PUT"
    size: int = Field(description="exact bytes to send: the part's slice of the file")
    offset: int = Field(description="where the part starts in the file")


class PartUrlsOut(BaseModel):
    upload_id: str
    parts: list[PartUrl]
    expires_at: datetime


class PartOut(BaseModel):
    part_number: int
    size: int
    etag: str


class MultipartStatusOut(MultipartOut):
    uploaded: list[PartOut] = Field(description="parts the storage holds, complete ones")
    missing: list[int] = Field(description="part numbers still to send")


class ClipPatch(In):
    position: int | None = Field(default=None, ge=0, description="new place in the project")
    filename: str | None = Field(default=None, min_length=1, max_length=500)


class ArtifactOut(Out):
    id: str
    kind: str
    size: int
    meta: dict[str, Any]
    url: str


class TranscriptOut(Out):
    id: str
    clip_id: str
    backend: str
    language: str | None
    words: list[dict[str, Any]] = Field(description="[{word, start, end, probability}] in "
                                                    "clip seconds")
    created_at: datetime


class AnalysisSettings(In):
    """Analysis settings, as stored on a project (``settings.analysis``) or sent per run."""

    silence_method: Literal["vad", "loudness"] | None = None
    silence_threshold_db: Annotated[float, Field(ge=-100, le=0)] | Literal["auto"] | None = None
    min_silence: float | None = Field(default=None, ge=0.05, le=60)
    padding: float | None = Field(default=None, ge=0, le=5)
    detectors: list[Literal["silence", "takes"]] | None = Field(
        default=None, description="default both; takes need a transcriber")


class AnalyzeRequest(AnalysisSettings):
    priority: Priority = "interactive"


class AnalysisOut(Out):
    id: str
    project_id: str
    status: str
    settings: dict[str, Any]
    summary: dict[str, Any] | None
    error: str | None
    job_id: str | None
    created_at: datetime


class EditOut(Out):
    id: str
    project_id: str
    clip_id: str
    analysis_run_id: str | None
    kind: str
    start: float
    end: float
    reason: str
    status: str
    source: str
    meta: dict[str, Any]


class EditCreate(In):
    clip_id: str
    start: Seconds
    end: Annotated[float, Field(gt=0, le=MAX_SECONDS)]
    kind: str = Field(default="manual", max_length=32)
    reason: str = Field(default="", max_length=2000)
    status: EditStatus = "accepted"
    snap: bool = Field(default=False, description=(
        "move start and end out of speech, to where the audio says it stops and starts "
        "(as analysis places its cuts); the clip must be processed"))

    @model_validator(mode="after")
    def _ordered(self) -> EditCreate:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class EditPatch(In):
    status: EditStatus | None = None
    start: Seconds | None = None
    end: Annotated[float, Field(gt=0, le=MAX_SECONDS)] | None = None
    reason: str | None = Field(default=None, max_length=2000)


class EditsBulkPatch(In):
    status: EditStatus
    ids: list[str] | None = Field(default=None, description="None: every edit of the project")
    only_status: EditStatus | None = Field(
        default=None, description="change only edits that currently have this status")


class BulkResult(BaseModel):
    updated: int


class ExportRequest(In):
    container: Literal["mp4", "mov", "mkv", "webm"] = "mp4"
    video_codec: Literal["h264", "vp9", "av1"] = "h264"
    mode: Literal["auto", "exact", "smart"] = Field(
        default="auto", description="smart: copy untouched GOPs (H.264 sources into mp4/mov); "
                                    "auto picks it when the source allows")
    crf: int = Field(default=20, ge=0, le=51)
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium",
                    "slow"] = "veryfast"
    width: int | None = Field(default=None, ge=16, le=7680)
    height: int | None = Field(default=None, ge=16, le=4320)
    apply: Literal["accepted", "accepted_and_proposed"] = "accepted"
    allow_upscale: bool = Field(
        default=False, description="allow width/height above the source's, up to the server's "
                                   "max_export_scale; otherwise larger sizes are refused")
    priority: Priority = "interactive"

    @model_validator(mode="after")
    def _playable(self) -> ExportRequest:
        if self.container == "webm" and self.video_codec == "h264":
            raise ValueError("webm carries vp9 or av1, not h264: pick video_codec vp9 or av1, "
                             "or container mp4")
        return self


class ExportOut(Out):
    id: str
    project_id: str
    status: str
    settings: dict[str, Any]
    size: int | None
    duration: float | None
    result: dict[str, Any] | None
    error: str | None
    job_id: str | None
    created_at: datetime


class DownloadOut(BaseModel):
    url: str
    expires_at: datetime
    filename: str


class JobOut(Out):
    id: str
    kind: str
    target_id: str
    project_id: str | None
    status: str
    priority: int
    progress: float
    message: str
    error: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


# -- imports from URL, asset edits, email opt-in (issue 15 item 5) ---------------------------


class ImportRequest(In):
    url: str = Field(min_length=1, max_length=4000,
                     description="http(s) URL of a video or audio file on a public server")
    filename: str | None = Field(default=None, min_length=1, max_length=500,
                                 description="name of the clip; default: the URL's last part")
    priority: Priority = "interactive"


class ImportOut(BaseModel):
    clip: ClipOut
    job_id: str


class TrimRange(In):
    start: Seconds = 0.0
    end: Annotated[float, Field(gt=0, le=MAX_SECONDS)]

    @model_validator(mode="after")
    def _ordered(self) -> TrimRange:
        if self.end <= self.start:
            raise ValueError("trim end must be after its start")
        return self


class AssetEditRequest(In):
    trim: TrimRange | None = Field(default=None, description="keep only [start, end) seconds")
    loudness_lufs: float | None = Field(
        default=None, ge=-60, le=-5, description="integrated loudness target (ITU-R BS.1770), "
                                                 "e.g. -16 for speech online, -23 for EBU R128")
    filename: str | None = Field(default=None, min_length=1, max_length=500,
                                 description="name of the new clip; default: derived")
    priority: Priority = "interactive"

    @model_validator(mode="after")
    def _something(self) -> AssetEditRequest:
        if self.trim is None and self.loudness_lufs is None:
            raise ValueError("nothing to do: give trim {start, end}, loudness_lufs, or both")
        return self


class AssetEditOut(BaseModel):
    clip: ClipOut = Field(description="the new clip; the source clip is left as it was")
    job_id: str


class MePatch(In):
    email: str | None = Field(default=None, max_length=320,
                              description="where export mail goes; \"\" removes it")
    notify_email: bool | None = Field(default=None, description="mail me when an export "
                                                                "completes or fails")
