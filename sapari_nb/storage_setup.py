"""``sapari-nb storage setup``: make an S3/R2 bucket ready for browser uploads.

Applies a CORS rule (PUT, GET, HEAD from the notebook origins, ETag readable: a browser's
multipart upload names its parts by it) and a lifecycle rule that drops multipart uploads
abandoned for a day; rules of the bucket's own are kept. Creates the bucket when missing.
On the local folder there is nothing to do: the job server serves its own signed URLs.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

# S3 allows one '*' per origin: loopback on any port (JupyterLab, the Panel app).
LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]


def add_parser(sub: Any) -> None:
    s = sub.add_parser("storage", help="object storage: `storage setup` applies the bucket's "
                                       "CORS rules for browser uploads")
    ssub = s.add_subparsers(dest="storage_command", required=True, metavar="setup")
    su = ssub.add_parser("setup", help="apply the CORS (and abandoned-upload) rules of "
                                       "SAPARI_STORAGE_URL's bucket and print them")
    su.add_argument("--origin", action="append", default=[], metavar="URL",
                    help="another browser origin allowed to upload (repeatable); "
                         "SAPARI_CORS_ORIGINS are always included")
    su.add_argument("--no-loopback", action="store_true",
                    help="leave out the default loopback origins (127.0.0.1, localhost)")
    su.add_argument("--abort-after-days", type=int, default=1, metavar="DAYS",
                    help="drop multipart uploads left incomplete this long (default 1)")
    su.add_argument("--data-dir", help="data folder (for the settings that live there)")
    su.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sapari_server.storage.base import StorageError
    from sapari_server.storage.factory import make_storage
    from sapari_server.storage.s3 import S3Storage

    from .cli import CliError, _settings

    settings = _settings(args.data_dir)
    url = settings.resolved_storage_url
    if url.startswith("file:"):
        print(f"storage is the local folder {url.removeprefix('file://')}: the job server "
              "serves its signed URLs itself (CORS from SAPARI_CORS_ORIGINS), nothing to do")
        return 0
    if args.abort_after_days < 1:
        raise CliError("--abort-after-days must be at least 1")
    try:
        storage = make_storage(settings)
    except ValueError as e:
        raise CliError(str(e)) from None
    assert isinstance(storage, S3Storage)
    origins = list(dict.fromkeys(
        [*settings.cors_origins, *args.origin,
         *([] if args.no_loopback else LOOPBACK_ORIGINS)]))
    if not origins:
        raise CliError("no origins: set SAPARI_CORS_ORIGINS or pass --origin")
    try:
        created = storage.ensure_bucket()
        cors = storage.apply_cors(origins)
        lifecycle = storage.apply_lifecycle(args.abort_after_days)
    except StorageError as e:
        raise CliError(str(e)) from None
    if created:
        print(f"created bucket {storage.bucket}")
    print(f"applied to {storage.describe()}:")
    print(json.dumps({"CORSRules": [cors], "LifecycleRules": [lifecycle]}, indent=2))
    return 0
