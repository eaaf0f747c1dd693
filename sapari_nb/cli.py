"""``sapari-nb``: edit a video end to end, or run the job server / a worker."""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from .cli_checks import check_edit_args, check_input, number

if TYPE_CHECKING:
    from sapari_server.runtime import Runtime
    from sapari_server.settings import Settings


class CliError(Exception):
    """A readable one-line failure: printed as ``sapari-nb CMD: message``, exit code 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, no usage block: "argument --crf: --crf must be ..." says it twice.
        head, _, rest = message.partition(": ")
        if head.startswith("argument ") and rest.startswith(head.removeprefix("argument ")
                                                            .split("/")[0]):
            message = rest
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _settings(data_dir: str | None, **overrides: object) -> Settings:
    """The settings (``SAPARI_*``); a bad value is one line naming its variable."""
    from pydantic import ValidationError

    from sapari_server.settings import Settings

    if data_dir:
        overrides["data_dir"] = Path(data_dir)
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as e:
        raise CliError("; ".join(
            f"SAPARI_{'_'.join(str(x) for x in err['loc']).upper()}: {err['msg']}"
            for err in e.errors())) from None


def _runtime(settings: Settings) -> Runtime:
    """The settings' backends, with the database migrated: works on a fresh data folder."""
    from sqlalchemy.exc import ArgumentError

    from sapari_server.db.migrate import upgrade
    from sapari_server.runtime import build_runtime

    # SQLite cannot create the folder its file lives in.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        rt = build_runtime(settings)  # refuses an unsupported backend URL, in one sentence
    except (ValueError, ArgumentError) as e:
        raise CliError(str(e)) from None
    try:
        upgrade(settings.resolved_database_url)
    except BaseException:
        rt.close()
        raise
    return rt


def _cmd_edit(args: argparse.Namespace) -> int:
    from .client import Client
    from .connect import embedded_server
    from .errors import Interrupted
    from .flow import edit_file, output_paths
    from .outputs import clashes

    if args.sample:
        from .samples import sample_path

        src = sample_path()
    elif args.input:
        src = Path(args.input)
    else:
        return _usage(args, "give an INPUT video, or --sample for the bundled talk")
    out = Path(args.output)
    edits = Path(args.edits) if args.edits else None
    problem = (check_input(src) or check_edit_args(args)
               or clashes([("input", src)], output_paths(out, edits, args.timeline)))
    if problem:
        return _usage(args, problem)
    container = out.suffix.lstrip(".").lower() or "mp4"
    if container not in ("mp4", "mov", "mkv", "webm"):
        return _usage(args, f"cannot write {out.suffix!r} files: name OUTPUT .mp4, .mov, .mkv "
                            "or .webm")
    analysis = {k: v for k, v in {"silence_threshold_db": args.threshold_db,
                                  "silence_method": args.method,
                                  "min_silence": args.min_silence,
                                  "padding": args.padding}.items() if v is not None}
    export: dict[str, Any] = {"crf": args.crf, "preset": args.preset, "mode": args.render_mode,
                              "container": container, "video_codec": args.codec}
    if container == "webm" and args.codec == "h264":
        export["video_codec"] = "vp9"
    if args.server and not args.token:
        return _usage(args, "--server needs --token (or SAPARI_TOKEN)")

    server = None
    data_dir = args.data_dir
    if not args.server and args.ephemeral and not data_dir:
        data_dir = tempfile.mkdtemp(prefix="sapari-nb-")
        # Removed below once the server stopped; again at exit in case a worker thread that
        # outlived the stop wrote into it meanwhile.
        atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    try:
        if args.server:
            client = Client(args.server, args.token, progress=not args.quiet)
        else:
            # The CLI never shows a preview: skip the proxy and thumbnails.
            server = embedded_server(data_dir, preview_artifacts=False)
            client = Client(server.url, server.token, progress=not args.quiet)
        with client:
            try:
                result = edit_file(client, src, out, edits_json=edits, analysis=analysis,
                                   export=export, timelines=args.timeline, cleanup=not args.keep)
            except Interrupted as e:
                what = (f"cancelled job {e.cancelled_job} on the server" if e.cancelled_job
                        else "nothing written")
                print(f"sapari-nb edit: interrupted; {what}", file=sys.stderr)
                return 130
    finally:
        if server is not None:
            server.stop()
        if args.ephemeral and data_dir and not args.data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
    _report(src, out, edits, result)
    return 0


def _report(src: Path, out: Path, edits: Path | None, result: Any) -> None:
    for note in result.notes:
        print(f"note: {note}")
    kinds: dict[str, int] = {}
    for c in result.cuts:
        kinds[c["kind"]] = kinds.get(c["kind"], 0) + 1
    removed = result.input_duration - result.output_duration
    print(f"{src.name}: {result.input_duration:.2f} s -> {out} {result.output_duration:.2f} s "
          f"({len(result.cuts)} cuts, {removed:.2f} s removed)")
    print("cuts: " + (", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(kinds.items()))
                      or "none") + f" [{', '.join(result.detectors)}]")
    if edits is not None:
        print(f"applied cuts written to {edits}")
    for path in result.timelines:
        print(f"timeline written to {path}")


def _usage(args: argparse.Namespace, message: str) -> int:
    print(f"sapari-nb {args.command}: {message}", file=sys.stderr)
    return 2


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from sapari_server.app import create_app

    overrides: dict[str, object] = {"public_url": args.public_url or
                                    f"http://{args.host}:{args.port}"}
    if args.workers is not None:
        overrides["embedded_workers"] = args.workers
    settings = _settings(args.data_dir, **overrides)
    # Refuse unsupported backends in one line here, not as a traceback from the app's startup.
    _runtime(settings).close()
    print(f"sapari-nb job server on http://{args.host}:{args.port} "
          f"(data in {settings.data_dir}; local token in {settings.data_dir / 'token'})")
    # The embedded server's uvicorn: it ends open event streams at shutdown (their clients
    # reconnect to another process with Last-Event-ID) instead of waiting on them forever.
    from sapari_server.embedded import _Server as StreamClosingServer

    StreamClosingServer(uvicorn.Config(create_app(settings), host=args.host, port=args.port,
                                       log_level="info", timeout_graceful_shutdown=10)).run()
    return 0


def _cmd_app(args: argparse.Namespace) -> int:
    try:
        from . import panel_app
    except ImportError as e:
        raise CliError(f"the app needs Panel ({e}): pip install 'sapari-nb[app]'") from None
    from .client import Client
    from .connect import embedded_server

    if args.server and not args.token:
        return _usage(args, "--server needs --token (or SAPARI_TOKEN)")
    if args.server:
        client = Client(args.server, args.token, progress=False)
        where = args.server
    else:
        # The browser PUTs uploads to the embedded server's signed URLs itself: its CORS
        # default allows loopback origins; any other address the app listens on is added.
        extra: dict[str, object] = {}
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            extra["cors_origins"] = [f"http://{args.host}:{args.port}"]
        server = embedded_server(args.data_dir, **extra)
        client = Client(server.url, server.token, progress=False)
        where = f"the embedded server {server.url} (data in {server.settings.data_dir})"
    client.me()  # a wrong URL or token is one line now, not an error in the browser

    def ready(port: int) -> None:
        print(f"sapari-nb app on http://{args.host}:{port}/ using {where}; Ctrl-C stops it",
              flush=True)

    with client:
        panel_app.serve(client, port=args.port, address=args.host, show=args.show,
                        ready=ready)
    return 0


def _cmd_batch(args: argparse.Namespace) -> int:
    from .batch import BatchError, merge_params, parse_value, run

    if args.parallel < 1:
        return _usage(args, f"--parallel must be 1 or more, not {args.parallel}")
    if args.server and not args.token:
        return _usage(args, "--server needs --token (or SAPARI_TOKEN)")
    try:
        params = merge_params((k, parse_value(v)) for k, v in args.param or [])
        rows = run(args.inputs, args.output_dir, notebook=args.notebook,
                   parallel=args.parallel, params=params, server=args.server,
                   token=args.token, progress=not args.quiet, data_dir=args.data_dir)
    except BatchError as e:
        return _usage(args, str(e))
    failed = [r for r in rows if r.status != "ok"]
    out = Path(args.output_dir)
    print(f"{len(rows)} inputs: {len(rows) - len(failed)} edited, {len(failed)} failed; "
          f"report: {out / 'report.html'} and {out / 'report.csv'}")
    for r in failed:
        print(f"failed: {r.input}: {r.error}", file=sys.stderr)
    return 1 if args.strict and failed else 0


def _cmd_worker(args: argparse.Namespace) -> int:
    from sapari_server.queue.consumer import run_worker

    if args.workers < 1:
        raise CliError(f"--workers must be at least 1, not {args.workers}")
    rt = _runtime(_settings(args.data_dir))
    try:
        run_worker(rt, args.workers, args.queue)
    finally:
        rt.close()
    return 0


def _cmd_users(args: argparse.Namespace) -> int:
    from sapari_server.auth import create_token, create_user, find_user, revoke_all_tokens

    rt = _runtime(_settings(args.data_dir))
    try:
        with rt.sync_session() as s, s.begin():
            user = find_user(s, args.name)
            if args.revoke:
                if user is None:
                    raise CliError(f"there is no user named {args.name!r}")
                n = revoke_all_tokens(s, user.id)
            else:
                token = create_token(s, user.id) if user else create_user(s, args.name)[1]
    finally:
        rt.close()
    if args.revoke:
        print(f"revoked {n} token{'s' if n != 1 else ''} of {args.name}")
    else:
        print(token)
    return 0


def _cmd_gc(args: argparse.Namespace) -> int:
    from sapari_server.lifecycle.gc import collect

    rt = _runtime(_settings(args.data_dir))
    try:
        report = collect(rt, dry_run=args.dry_run)
    finally:
        rt.close()
    print(report.describe())
    return 0


# -- `sapari-nb db upgrade` (issue 15, deployment) ----------------------------------------
_MIGRATION_LOCK = 0x5A9A4D  # pg_advisory_lock key: one schema upgrade at a time


def _cmd_db(args: argparse.Namespace) -> int:
    """Bring SAPARI_DATABASE_URL to the newest schema: the fleet's one-shot before API starts."""
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, DBAPIError
    from sqlalchemy.pool import NullPool

    from sapari_server.db.engine import sync_url
    from sapari_server.db.migrate import upgrade

    settings = _settings(args.data_dir)
    url = settings.resolved_database_url
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except ArgumentError as e:
        raise CliError(f"SAPARI_DATABASE_URL: {e}") from None
    if not settings.database_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)  # SQLite makes no folders

    engine = create_engine(sync_url(url), poolclass=NullPool)

    def revision() -> str | None:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    try:
        # Two upgrades at once (deploy hooks on several machines) would both run the same
        # DDL and one would fail: on PostgreSQL they take turns under an advisory lock.
        with engine.connect() as lock:
            if lock.dialect.name == "postgresql":
                lock.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
            before = revision()
            upgrade(url)
            after = revision()
    except DBAPIError as e:
        reason = str(e.orig).strip().splitlines()[0] if e.orig else str(e)
        raise CliError(f"cannot upgrade the database {shown}: {reason}") from None
    finally:
        engine.dispose()  # closing the lock's connection releases the lock
    if before == after:
        print(f"database {shown} is at the newest schema ({after})")
    else:
        print(f"database {shown} upgraded from {before or 'empty'} to {after}")
    return 0
# -- end of `sapari-nb db` -----------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from .cli_checks import PRESETS

    env_server = os.environ.get("SAPARI_SERVER") or os.environ.get("SAPARI_URL")
    p = _Parser(prog="sapari-nb", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("edit", help="cut the silences out of a video, end to end")
    e.add_argument("input", nargs="?", help="the video to edit (never overwritten)")
    e.add_argument("-o", "--output", required=True,
                   help="where to write the cut video (.mp4, .mov, .mkv, .webm); must not be "
                        "the input")
    e.add_argument("--edits", metavar="EDITS.json",
                   help="also write the applied cuts: [{start, end, kind, reason}] in seconds")
    e.add_argument("--timeline", action="append", metavar="FORMAT",
                   choices=["fcpxml", "premiere", "edl", "otio", "srt", "vtt"],
                   help="also write the cut as an NLE timeline or captions beside OUTPUT "
                        "(fcpxml, premiere, edl, otio, srt, vtt; repeatable)")
    e.add_argument("--sample", action="store_true", help="edit the bundled sample talk")
    e.add_argument("--method", choices=["vad", "loudness"],
                   help="how pauses are found: voice activity (default) or loudness only")
    e.add_argument("--threshold-db", type=number("--threshold-db", float, allow=("auto",)),
                   help="loudness threshold in dBFS (-100..0), or 'auto' (default: from the "
                        "noise floor)")
    e.add_argument("--min-silence", type=number("--min-silence", float),
                   help="shortest pause cut, seconds (default 0.5)")
    e.add_argument("--padding", type=number("--padding", float),
                   help="speech kept around each cut, s (default 0.1)")
    e.add_argument("--crf", type=number("--crf", int), default=20,
                   help="quality floor, lower is better (0-51); never finer than an x264 source's own")
    e.add_argument("--codec", choices=["h264", "vp9", "av1"], default="h264",
                   help="video codec (the container follows OUTPUT's extension)")
    e.add_argument("--render-mode", choices=["auto", "exact", "smart"], default="auto",
                   help="smart copies untouched GOPs of H.264 sources (auto: when it can)")
    e.add_argument("--preset", default="veryfast", help=f"x264 preset: {', '.join(PRESETS)}")
    e.add_argument("--server", default=env_server,
                   help="use this job server instead of the embedded one (default: "
                        "$SAPARI_SERVER)")
    e.add_argument("--token", default=os.environ.get("SAPARI_TOKEN"),
                   help="API token for --server (default: $SAPARI_TOKEN)")
    e.add_argument("--data-dir", help="embedded server's data folder (default ~/.sapari-nb)")
    e.add_argument("--ephemeral", action="store_true",
                   help="use a fresh temporary data folder for this run, removed at the end")
    e.add_argument("--keep", action="store_true",
                   help="keep the project on the server (default: deleted, with its stored "
                        "files, once the result is downloaded)")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    e.set_defaults(func=_cmd_edit)

    s = sub.add_parser("serve", help="run the job server (embedded workers included)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--public-url", help="URL clients use to reach this server")
    s.add_argument("--data-dir")
    s.add_argument("--workers", type=int, help="in-process worker threads per queue, heavy and light (0: none)")
    s.set_defaults(func=_cmd_serve)

    a = sub.add_parser("app", help="serve the widgets as a Panel web app (project list, "
                                   "upload, review, export)")
    a.add_argument("--port", type=int, default=5006, help="port of the app (0: any free one)")
    a.add_argument("--host", default="127.0.0.1", help="address the app listens on")
    a.add_argument("--server", default=env_server,
                   help="use this job server instead of the embedded one (default: "
                        "$SAPARI_SERVER); the browser must reach it too, for uploads")
    a.add_argument("--token", default=os.environ.get("SAPARI_TOKEN"),
                   help="API token for --server (default: $SAPARI_TOKEN)")
    a.add_argument("--data-dir", help="embedded server's data folder (default ~/.sapari-nb)")
    a.add_argument("--show", action="store_true", help="open the app in a browser")
    a.set_defaults(func=_cmd_app)

    b = sub.add_parser("batch", help="edit many recordings headless: one papermill run of the "
                                     "batch notebook per input, then report.csv and report.html")
    b.add_argument("inputs", nargs="+", metavar="INPUT", help="the recordings (never overwritten)")
    b.add_argument("-o", "--output-dir", required=True, metavar="OUTDIR",
                   help="folder for the cut videos, executed notebooks and the report; must not "
                        "be an input")
    b.add_argument("--notebook", metavar="NB",
                   help="the papermill notebook to run (default: notebooks/03-batch.ipynb)")
    b.add_argument("--parallel", type=number("--parallel", int), default=1, metavar="N",
                   help="notebooks run at once (default 1)")
    b.add_argument("-p", "--param", nargs=2, action="append", metavar=("KEY", "VALUE"),
                   help="a notebook parameter; VALUE is JSON when it parses, else text: "
                        "-p analysis.min_silence 0.8, -p export '{\"crf\": 23}' (repeatable)")
    b.add_argument("--strict", action="store_true", help="exit 1 when any input failed")
    b.add_argument("--server", default=env_server,
                   help="use this job server instead of the embedded one (default: "
                        "$SAPARI_SERVER)")
    b.add_argument("--token", default=os.environ.get("SAPARI_TOKEN"),
                   help="API token for --server (default: $SAPARI_TOKEN)")
    b.add_argument("--data-dir", help="embedded server's data folder (default ~/.sapari-nb)")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=_cmd_batch)

    w = sub.add_parser("worker", help="run a Huey worker for the configured queue")
    w.add_argument("--workers", type=int, default=2, help="worker threads per queue served")
    w.add_argument("--queue", choices=("heavy", "light", "all"), default="all",
                   help="heavy: renders, proxies, downloads; light: analysis, email and the "
                        "periodic sweeps; all: both (default)")
    w.add_argument("--data-dir")
    w.set_defaults(func=_cmd_worker)

    u = sub.add_parser("users", help="create a user (or a new token) and print the token")
    u.add_argument("name")
    u.add_argument("--revoke", action="store_true",
                   help="revoke all of NAME's tokens instead (they stop working at once)")
    u.add_argument("--data-dir")
    u.set_defaults(func=_cmd_users)

    g = sub.add_parser("gc", help="remove stored files that only deleted or replaced rows own "
                                  "(past the retention period) and say what was freed")
    g.add_argument("--dry-run", action="store_true", help="only say what would be freed")
    g.add_argument("--data-dir")
    g.set_defaults(func=_cmd_gc)

    d = sub.add_parser("db", help="database schema: `db upgrade` migrates SAPARI_DATABASE_URL "
                                  "to the newest schema")
    dsub = d.add_subparsers(dest="db_command", required=True, metavar="upgrade")
    du = dsub.add_parser("upgrade", help="apply every pending migration (safe to run again)")
    du.add_argument("--data-dir", help="data folder of the embedded SQLite database "
                                       "(when SAPARI_DATABASE_URL is unset)")
    du.set_defaults(func=_cmd_db)

    # -- `sapari-nb storage setup` (issue 15, S3/R2 storage) --------------------------------
    from .storage_setup import add_parser as add_storage_parser

    add_storage_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from .errors import SapariError

    try:
        return int(args.func(args) or 0)
    except (SapariError, CliError) as e:
        print(f"sapari-nb {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"sapari-nb {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
