"""``sapari-nb``: edit a video end to end, or run the job server / a worker."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path


def _threshold(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a dBFS number nor 'auto'") from None
    if not -100 <= value <= 0:
        raise argparse.ArgumentTypeError(f"{value} dBFS is outside -100..0")
    return value


def _cmd_edit(args: argparse.Namespace) -> int:
    from .client import Client
    from .connect import embedded_server
    from .flow import edit_file

    if args.sample:
        from .samples import sample_path

        src = sample_path()
    elif args.input:
        src = Path(args.input)
    else:
        print("sapari-nb edit: give an INPUT video, or --sample for the bundled talk",
              file=sys.stderr)
        return 2
    if not src.is_file():
        print(f"sapari-nb edit: {src} does not exist or is not a file", file=sys.stderr)
        return 2
    out = Path(args.output)
    analysis = {k: v for k, v in {"silence_threshold_db": args.threshold_db,
                                  "silence_method": args.method,
                                  "min_silence": args.min_silence,
                                  "padding": args.padding}.items() if v is not None}
    export = {"crf": args.crf, "preset": args.preset, "mode": args.render_mode,
              "container": out.suffix.lstrip(".").lower() or "mp4", "video_codec": args.codec}
    if export["container"] not in ("mp4", "mov", "mkv", "webm"):
        print(f"sapari-nb edit: cannot write {out.suffix!r} files: name OUTPUT .mp4, .mov, .mkv "
              "or .webm", file=sys.stderr)
        return 2
    if export["container"] == "webm" and args.codec == "h264":
        export["video_codec"] = "vp9"
    if args.server:
        if not args.token:
            print("sapari-nb edit: --server needs --token (or SAPARI_TOKEN)", file=sys.stderr)
            return 2
        client = Client(args.server, args.token, progress=not args.quiet)
    else:
        data_dir = args.data_dir or (tempfile.mkdtemp(prefix="sapari-nb-") if args.ephemeral
                                     else None)
        # The CLI never shows a preview: skip the proxy and thumbnails.
        server = embedded_server(data_dir, preview_artifacts=False)
        client = Client(server.url, server.token, progress=not args.quiet)
    with client:
        result = edit_file(client, src, out, edits_json=Path(args.edits) if args.edits else None,
                           analysis=analysis, export=export, timelines=args.timeline)
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
    if args.edits:
        print(f"applied cuts written to {args.edits}")
    for path in result.timelines:
        print(f"timeline written to {path}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from sapari_server.app import create_app
    from sapari_server.settings import Settings

    overrides: dict[str, object] = {"public_url": args.public_url or
                                    f"http://{args.host}:{args.port}"}
    if args.data_dir:
        overrides["data_dir"] = Path(args.data_dir)
    if args.workers is not None:
        overrides["embedded_workers"] = args.workers
    settings = Settings(**overrides)  # type: ignore[arg-type]
    print(f"sapari-nb job server on http://{args.host}:{args.port} "
          f"(data in {settings.data_dir}; local token in {settings.data_dir / 'token'})")
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    from sapari_server.db.migrate import upgrade
    from sapari_server.queue.consumer import run_worker
    from sapari_server.runtime import build_runtime
    from sapari_server.settings import Settings

    settings = Settings(**({"data_dir": Path(args.data_dir)} if args.data_dir else {}))  # type: ignore[arg-type]
    upgrade(settings.resolved_database_url)
    run_worker(build_runtime(settings), args.workers)
    return 0


def _cmd_users(args: argparse.Namespace) -> int:
    from sapari_server.auth import create_token, create_user, find_user
    from sapari_server.db.migrate import upgrade
    from sapari_server.runtime import build_runtime
    from sapari_server.settings import Settings

    settings = Settings(**({"data_dir": Path(args.data_dir)} if args.data_dir else {}))  # type: ignore[arg-type]
    upgrade(settings.resolved_database_url)
    rt = build_runtime(settings)
    with rt.sync_session() as s, s.begin():
        user = find_user(s, args.name)
        token = create_token(s, user.id) if user else create_user(s, args.name)[1]
    print(token)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sapari-nb", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("edit", help="cut the silences out of a video, end to end")
    e.add_argument("input", nargs="?", help="the video to edit")
    e.add_argument("-o", "--output", required=True, help="where to write the cut video (.mp4)")
    e.add_argument("--edits", metavar="EDITS.json",
                   help="also write the applied cuts: [{start, end, kind, reason}] in seconds")
    e.add_argument("--timeline", action="append", metavar="FORMAT",
                   choices=["fcpxml", "premiere", "edl", "otio", "srt", "vtt"],
                   help="also write the cut as an NLE timeline or captions beside OUTPUT "
                        "(fcpxml, premiere, edl, otio, srt, vtt; repeatable)")
    e.add_argument("--sample", action="store_true", help="edit the bundled sample talk")
    e.add_argument("--method", choices=["vad", "loudness"],
                   help="how pauses are found: voice activity (default) or loudness only")
    e.add_argument("--threshold-db", type=_threshold,
                   help="loudness threshold in dBFS, or 'auto' (default: from the noise floor)")
    e.add_argument("--min-silence", type=float, help="shortest pause cut, seconds (default 0.5)")
    e.add_argument("--padding", type=float, help="speech kept around each cut, s (default 0.1)")
    e.add_argument("--crf", type=int, default=20, help="quality, lower is better (0-51)")
    e.add_argument("--codec", choices=["h264", "vp9", "av1"], default="h264",
                   help="video codec (the container follows OUTPUT's extension)")
    e.add_argument("--render-mode", choices=["auto", "exact", "smart"], default="auto",
                   help="smart copies untouched GOPs of H.264 sources (auto: when it can)")
    e.add_argument("--preset", default="veryfast", help="x264 preset")
    e.add_argument("--server", help="use this job server instead of the embedded one")
    e.add_argument("--token", help="API token for --server")
    e.add_argument("--data-dir", help="embedded server's data folder (default ~/.sapari-nb)")
    e.add_argument("--ephemeral", action="store_true",
                   help="use a fresh temporary data folder for this run")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    e.set_defaults(func=_cmd_edit)

    s = sub.add_parser("serve", help="run the job server (embedded workers included)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--public-url", help="URL clients use to reach this server")
    s.add_argument("--data-dir")
    s.add_argument("--workers", type=int, help="in-process worker threads (0: none)")
    s.set_defaults(func=_cmd_serve)

    w = sub.add_parser("worker", help="run a Huey worker for the configured queue")
    w.add_argument("--workers", type=int, default=2)
    w.add_argument("--data-dir")
    w.set_defaults(func=_cmd_worker)

    u = sub.add_parser("users", help="create a user (or a new token) and print the token")
    u.add_argument("name")
    u.add_argument("--data-dir")
    u.set_defaults(func=_cmd_users)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from .errors import JobFailed, SapariError

    try:
        return int(args.func(args) or 0)
    except (JobFailed, SapariError) as e:
        print(f"sapari-nb {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
