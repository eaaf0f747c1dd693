"""S3-compatible storage on boto3: Cloudflare R2, AWS S3, MinIO, moto, any S3 endpoint.

``SAPARI_STORAGE_URL=s3://BUCKET?endpoint=URL&region=auto&path_style=1&public_endpoint=URL``

- ``endpoint``: the S3 API the server and workers talk to (empty: AWS S3 itself).
  R2: ``https://<account id>.r2.cloudflarestorage.com``.
- ``region``: the signing region; R2 takes ``auto``. Empty: boto3's own (``AWS_REGION``,
  ``AWS_DEFAULT_REGION``, the config file), else ``us-east-1``.
- ``path_style=1``: ``endpoint/bucket/key`` URLs instead of ``bucket.endpoint/key`` (MinIO,
  moto and most self-hosted stores need it).
- ``public_endpoint``: where browsers and clients reach the store, when that differs from
  ``endpoint`` (a compose network name such as ``http://minio:9000`` for the server,
  ``http://localhost:9000`` for people). Signed URLs are made for it.

Credentials: ``SAPARI_STORAGE_ACCESS_KEY`` and ``SAPARI_STORAGE_SECRET_KEY`` when both are
set, else boto3's usual chain (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``,
``AWS_PROFILE``, an instance role). ``sapari-nb storage setup`` applies the bucket's CORS
rules (browser uploads) and a rule that drops multipart uploads abandoned for a day.

Signed URLs are presigned SigV4 URLs: bound to the key and method, an hour by default, a PUT
also to its exact Content-Length and Content-Type (where the service checks signed headers,
as S3 and R2 do, other bytes are refused). Unlike the local backend, a signed GET cannot be
revoked early: it works until it expires or the object is purged.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import parse_qs, quote, urlparse

from .base import MultipartError, ObjectInfo, PartInfo, StorageError
from .media_types import media_type
from .multipart import MiB, clean_etag

if TYPE_CHECKING:
    from ..settings import Settings

URL_OPTIONS = {"endpoint", "region", "path_style", "public_endpoint"}
# What a worker's scratch folder keeps free beside a download (other steps write there too).
SCRATCH_MARGIN = 256 * MiB
# Ranged reads start small (a probe reads a few kB here and there) and double while the
# reader goes on sequentially, so a full decode costs a few dozen requests, not thousands.
FIRST_WINDOW = 1 * MiB
MAX_WINDOW = 64 * MiB
# The CORS rule and the lifecycle rule `storage setup` owns, found again by these ids.
CORS_RULE_ID = "sapari-nb-browser-uploads"
LIFECYCLE_RULE_ID = "sapari-nb-abort-incomplete-multipart"


class StorageUnavailable(StorageError):
    """The object store did not answer, or refused the server's own credentials."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    endpoint: str | None
    region: str | None
    path_style: bool
    public_endpoint: str | None


def parse_s3_url(url: str) -> S3Location:
    """``s3://bucket?endpoint=…&region=…&path_style=1`` as a location; ValueError naming
    what is wrong."""
    u = urlparse(url)
    if u.scheme != "s3":
        raise ValueError(f"not an s3:// URL: {url!r}")
    if not u.netloc or u.path not in ("", "/"):
        raise ValueError(f"SAPARI_STORAGE_URL {url!r} must name a bucket and nothing more: "
                         "s3://BUCKET?endpoint=…&region=…")
    q = {k: v[-1] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
    unknown = set(q) - URL_OPTIONS
    if unknown:
        raise ValueError(f"SAPARI_STORAGE_URL has unknown options {sorted(unknown)}; "
                         f"known: {sorted(URL_OPTIONS)}")
    for name in ("endpoint", "public_endpoint"):
        if q.get(name) and urlparse(q[name]).scheme not in ("http", "https"):
            raise ValueError(f"SAPARI_STORAGE_URL {name}={q[name]!r} must be an http(s) URL")
    flag = q.get("path_style", "0").lower()
    if flag not in ("0", "1", "true", "false", "yes", "no", ""):
        raise ValueError(f"SAPARI_STORAGE_URL path_style={flag!r}: use 1 or 0")
    return S3Location(bucket=u.netloc, endpoint=q.get("endpoint") or None,
                      region=q.get("region") or None,
                      path_style=flag in ("1", "true", "yes"),
                      public_endpoint=q.get("public_endpoint") or None)


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback and the exact UTF-8 name (RFC 6266)."""
    ascii_name = (filename.encode("ascii", "replace").decode()
                  .replace("?", "_").replace('"', "_").replace("\\", "_"))
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


def _code(e: Exception) -> str:
    response = getattr(e, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class S3Storage:
    min_part_size = 5 * MiB  # S3's and R2's smallest part (but the last)

    def __init__(self, location: S3Location, *, access_key: str = "", secret_key: str = "",
                 scratch_dir: Path | None = None, scratch_max_bytes: int = 0,
                 transfer_part_size: int = 16 * MiB, transfer_threshold: int = 64 * MiB) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.location = location
        self.bucket = location.bucket
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if location.path_style else "auto"},
            retries={"max_attempts": 5, "mode": "standard"},
            max_pool_connections=32,
            # Completing a multipart upload of gigabytes can take the store minutes (S3
            # keeps the connection alive meanwhile): do not give up, or retry it, at 60 s.
            read_timeout=300,
            # boto3 >= 1.36 adds CRC checksums to every upload by default; R2 and other
            # S3-compatible stores reject some of them, and a presigned URL cannot carry them.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        creds: dict[str, Any] = {}
        if access_key and secret_key:
            creds = {"aws_access_key_id": access_key, "aws_secret_access_key": secret_key}
        session = boto3.session.Session(**creds)
        region = location.region or session.region_name or "us-east-1"
        self.client = session.client("s3", endpoint_url=location.endpoint,
                                     region_name=region, config=config)
        # Signed URLs name the endpoint people reach; signing needs no network.
        self.signer = (session.client("s3", endpoint_url=location.public_endpoint,
                                      region_name=region, config=config)
                       if location.public_endpoint else self.client)
        self.scratch_dir = scratch_dir
        self.scratch_max_bytes = scratch_max_bytes
        self.transfer = TransferConfig(multipart_threshold=max(transfer_threshold, 5 * MiB),
                                       multipart_chunksize=max(transfer_part_size, 5 * MiB),
                                       max_concurrency=4)

    @classmethod
    def from_settings(cls, url: str, settings: Settings) -> S3Storage:
        return cls(parse_s3_url(url), access_key=settings.storage_access_key,
                   secret_key=settings.storage_secret_key,
                   scratch_dir=settings.data_dir / "scratch",
                   scratch_max_bytes=settings.storage_scratch_max_bytes,
                   transfer_part_size=settings.multipart_part_size,
                   transfer_threshold=settings.multipart_threshold)

    def describe(self) -> str:
        where = self.location.endpoint or "AWS S3"
        return f"s3://{self.bucket} at {where}"

    @contextmanager
    def _calling(self, what: str) -> Iterator[None]:
        """Transport and credential failures become one readable StorageUnavailable."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as e:
            raise StorageUnavailable(f"{self.describe()} refused {what}: {_code(e)} "
                                     f"({e.response.get('Error', {}).get('Message', '')})"
                                     ) from e
        except BotoCoreError as e:
            raise StorageUnavailable(f"{self.describe()} did not answer {what}: {e}") from e

    # -- signed URLs -------------------------------------------------------------------
    def presign_put(self, key: str, *, max_size: int, content_type: str | None = None,
                    expires_in: int = 3600) -> str:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "ContentLength": max_size}
        if content_type:
            params["ContentType"] = content_type
        return self.signer.generate_presigned_url("put_object", Params=params,
                                                  ExpiresIn=expires_in, HttpMethod="PUT")

    def presign_get(self, key: str, *, expires_in: int = 3600,
                    filename: str | None = None) -> str:
        # The type comes from the key, never from what the uploader claimed.
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key,
                                  "ResponseContentType": media_type(key)}
        if filename:
            params["ResponseContentDisposition"] = content_disposition(filename)
        return self.signer.generate_presigned_url("get_object", Params=params,
                                                  ExpiresIn=expires_in, HttpMethod="GET")

    # -- objects -----------------------------------------------------------------------
    def head(self, key: str) -> ObjectInfo | None:
        from botocore.exceptions import ClientError

        with self._calling(f"HEAD {key}"):
            try:
                r = self.client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as e:
                if _code(e) in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise
        return ObjectInfo(key, int(r["ContentLength"]))

    def delete(self, key: str) -> None:
        with self._calling(f"DELETE {key}"):
            self.client.delete_object(Bucket=self.bucket, Key=key)

    @contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        """Download to a scratch file (for steps that need random access), removed after."""
        info = self.head(key)
        if info is None:
            raise StorageError(f"object {key} does not exist")
        base = self.scratch_dir or Path(tempfile.gettempdir())
        base.mkdir(parents=True, exist_ok=True)
        if self.scratch_max_bytes and info.size > self.scratch_max_bytes:
            raise StorageError(
                f"object {key} is {info.size / MiB:.0f} MiB, over the scratch limit of "
                f"{self.scratch_max_bytes / MiB:.0f} MiB (SAPARI_STORAGE_SCRATCH_MAX_BYTES)")
        free = shutil.disk_usage(base).free
        if info.size + SCRATCH_MARGIN > free:
            raise StorageError(
                f"object {key} is {info.size / MiB:.0f} MiB but the scratch folder {base} has "
                f"only {free / MiB:.0f} MiB free: free disk space or move SAPARI_DATA_DIR")
        folder = Path(tempfile.mkdtemp(prefix="s3-", dir=base))
        try:
            path = folder / Path(key).name
            with self._calling(f"GET {key}"):
                self.client.download_file(self.bucket, key, str(path), Config=self.transfer)
            yield path
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        """A seekable reader on ranged GETs: PyAV can probe and decode without a download."""
        info = self.head(key)
        if info is None:
            raise StorageError(f"object {key} does not exist")
        raw = RangeReader(self, key, info.size)
        reader = io.BufferedReader(raw, buffer_size=1 * MiB)
        try:
            yield reader  # type: ignore[misc]
        finally:
            reader.close()

    def put_file(self, key: str, path: Path) -> ObjectInfo:
        """Managed transfer: multipart with parallel parts above the threshold."""
        with self._calling(f"PUT {key}"):
            self.client.upload_file(str(path), self.bucket, key, Config=self.transfer,
                                    ExtraArgs={"ContentType": media_type(key)})
        return ObjectInfo(key, path.stat().st_size)

    def iter_bytes(self, key: str, chunk: int = 1 << 20) -> Iterator[bytes]:
        with self._calling(f"GET {key}"):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        try:
            yield from body.iter_chunks(chunk)
        finally:
            body.close()

    def get_range(self, key: str, start: int, end: int) -> Any:
        """The streaming body of bytes ``start..end`` (inclusive)."""
        with self._calling(f"GET {key}"):
            return self.client.get_object(Bucket=self.bucket, Key=key,
                                          Range=f"bytes={start}-{end}")["Body"]

    # -- multipart uploads ---------------------------------------------------------------
    def create_multipart(self, key: str, *, content_type: str | None = None) -> str:
        extra = {"ContentType": content_type} if content_type else {}
        with self._calling(f"create a multipart upload of {key}"):
            r = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, **extra)
        return str(r["UploadId"])

    def presign_part(self, key: str, upload_id: str, part_number: int, *, size: int,
                     expires_in: int = 3600) -> str:
        return self.signer.generate_presigned_url(
            "upload_part", ExpiresIn=expires_in, HttpMethod="PUT",
            Params={"Bucket": self.bucket, "Key": key, "UploadId": upload_id,
                    "PartNumber": part_number, "ContentLength": size})

    def _no_upload(self, e: Exception, upload_id: str) -> MultipartError | None:
        if _code(e) in ("NoSuchUpload", "404"):
            return MultipartError(f"no multipart upload {upload_id} for this object: it was "
                                  "completed, aborted or never started; presign again")
        return None

    def list_parts(self, key: str, upload_id: str) -> list[PartInfo]:
        from botocore.exceptions import ClientError

        parts: list[PartInfo] = []
        marker = 0
        while True:
            try:
                with self._calling(f"list the parts of {key}"):
                    r = self.client.list_parts(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                               MaxParts=1000, PartNumberMarker=marker)
            except StorageUnavailable as e:
                cause = e.__cause__
                if isinstance(cause, ClientError) and (err := self._no_upload(cause, upload_id)):
                    raise err from None
                raise
            parts += [PartInfo(int(p["PartNumber"]), int(p["Size"]), clean_etag(p["ETag"]))
                      for p in r.get("Parts", [])]
            if not r.get("IsTruncated"):
                break
            marker = int(r["NextPartNumberMarker"])
        return parts

    def pending_multipart(self, key: str) -> list[str]:
        ids: list[str] = []
        kw: dict[str, Any] = {"Bucket": self.bucket, "Prefix": key}
        while True:
            with self._calling(f"list the multipart uploads of {key}"):
                r = self.client.list_multipart_uploads(**kw)
            ids += [u["UploadId"] for u in r.get("Uploads", []) if u["Key"] == key]
            if not r.get("IsTruncated"):
                return ids
            kw.update(KeyMarker=r["NextKeyMarker"], UploadIdMarker=r["NextUploadIdMarker"])

    def complete_multipart(self, key: str, upload_id: str,
                           parts: list[tuple[int, str]]) -> ObjectInfo:
        from botocore.exceptions import ClientError

        try:
            with self._calling(f"complete the multipart upload of {key}"):
                self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id,
                    MultipartUpload={"Parts": [{"PartNumber": n, "ETag": f'"{clean_etag(e)}"'}
                                               for n, e in parts]})
        except StorageUnavailable as e:
            cause = e.__cause__
            if isinstance(cause, ClientError):
                if err := self._no_upload(cause, upload_id):
                    raise err from None
                code = _code(cause)
                if code in ("InvalidPart", "InvalidPartOrder", "EntityTooSmall"):
                    msg = cause.response.get("Error", {}).get("Message", "")
                    raise MultipartError(f"the store refused the parts ({code}): {msg}") from None
            raise
        info = self.head(key)
        if info is None:
            raise StorageError(f"object {key} is missing right after its upload completed")
        return info

    def abort_multipart(self, key: str, upload_id: str) -> None:
        from botocore.exceptions import ClientError

        try:
            with self._calling(f"abort the multipart upload of {key}"):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key,
                                                   UploadId=upload_id)
        except StorageUnavailable as e:
            if not (isinstance(e.__cause__, ClientError) and self._no_upload(e.__cause__,
                                                                              upload_id)):
                raise

    # -- bucket setup (sapari-nb storage setup) ----------------------------------------------
    def ensure_bucket(self) -> bool:
        """Create the bucket when it does not exist; True when it was created."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
            return False
        except ClientError as e:
            if _code(e) not in ("404", "NoSuchBucket", "NotFound"):
                raise StorageUnavailable(f"{self.describe()}: cannot reach the bucket "
                                         f"({_code(e)})") from e
        with self._calling(f"create bucket {self.bucket}"):
            region = self.client.meta.region_name
            if region in (None, "us-east-1", "auto"):
                self.client.create_bucket(Bucket=self.bucket)
            else:
                self.client.create_bucket(
                    Bucket=self.bucket,
                    CreateBucketConfiguration={"LocationConstraint": region})
        return True

    def apply_cors(self, origins: list[str]) -> dict[str, Any]:
        """Put our browser-upload CORS rule beside the bucket's other rules; returns ours."""
        from botocore.exceptions import ClientError

        rule = cors_rule(origins)
        try:
            current = self.client.get_bucket_cors(Bucket=self.bucket).get("CORSRules", [])
        except ClientError as e:
            if _code(e) not in ("NoSuchCORSConfiguration", "404"):
                raise StorageUnavailable(f"{self.describe()}: cannot read CORS ({_code(e)})") from e
            current = []
        rules = [r for r in current if r.get("ID") != CORS_RULE_ID] + [rule]
        with self._calling("PUT bucket CORS"):
            self.client.put_bucket_cors(Bucket=self.bucket,
                                        CORSConfiguration={"CORSRules": rules})
        return rule

    def apply_lifecycle(self, days: int = 1) -> dict[str, Any]:
        """Abandoned multipart uploads (a client that never came back) go after ``days``."""
        from botocore.exceptions import ClientError

        rule = {"ID": LIFECYCLE_RULE_ID, "Status": "Enabled", "Filter": {"Prefix": ""},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": days}}
        try:
            current = self.client.get_bucket_lifecycle_configuration(
                Bucket=self.bucket).get("Rules", [])
        except ClientError as e:
            if _code(e) not in ("NoSuchLifecycleConfiguration", "404"):
                raise StorageUnavailable(
                    f"{self.describe()}: cannot read lifecycle rules ({_code(e)})") from e
            current = []
        rules = [r for r in current if r.get("ID") != LIFECYCLE_RULE_ID] + [rule]
        with self._calling("PUT bucket lifecycle"):
            self.client.put_bucket_lifecycle_configuration(
                Bucket=self.bucket, LifecycleConfiguration={"Rules": rules})
        return rule


def cors_rule(origins: list[str]) -> dict[str, Any]:
    """What a browser upload and playback need: PUT (whole or parts), GET and HEAD with
    Range, and the ETag header readable (a multipart upload's parts are named by it)."""
    return {
        "ID": CORS_RULE_ID,
        "AllowedOrigins": origins,
        "AllowedMethods": ["PUT", "GET", "HEAD"],
        "AllowedHeaders": ["*"],
        "ExposeHeaders": ["ETag", "Content-Length", "Content-Range", "Accept-Ranges"],
        "MaxAgeSeconds": 3600,
    }


class RangeReader(io.RawIOBase):
    """A seekable read-only file on HTTP Range GETs of one object.

    A sequential reader keeps one ranged response open and the window grows (1 MiB up to
    64 MiB); a seek elsewhere starts a new small range, so probing the end of an MP4 for
    its index costs one small request, not a download.
    """

    def __init__(self, storage: S3Storage, key: str, size: int) -> None:
        super().__init__()
        self.storage, self.key, self.size = storage, key, size
        self._pos = 0
        self._body: Any = None
        self._body_pos = 0  # where the open response's next byte sits in the object
        self._body_end = 0  # one past its last byte
        self._window = FIRST_WINDOW
        self.requests = 0  # ranged GETs made (tests and benchmarks look)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def _open(self) -> None:
        sequential = self._body is not None and self._pos == self._body_end
        self._drop()
        self._window = min(self._window * 2, MAX_WINDOW) if sequential else FIRST_WINDOW
        end = min(self._pos + self._window, self.size) - 1
        self._body = self.storage.get_range(self.key, self._pos, end)
        self.requests += 1
        self._body_pos, self._body_end = self._pos, end + 1

    def _drop(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def readinto(self, b: Any) -> int:
        if self.closed:
            raise ValueError("read from a closed reader")
        if self._pos >= self.size or len(b) == 0:
            return 0
        for _ in range(3):
            if self._body is None or self._body_pos != self._pos or self._pos >= self._body_end:
                self._open()
            want = min(len(b), self._body_end - self._pos)
            data = self._body.read(want)
            if data:
                n = len(data)
                memoryview(b)[:n] = data
                self._pos += n
                self._body_pos = self._pos
                return n
            self._drop()  # the response ended early (a dropped connection): ask again
        raise StorageError(f"object {self.key} stopped answering at byte {self._pos}")

    def close(self) -> None:
        self._drop()
        super().close()
