"""`sapari-nb edit` checks its own arguments before anything is uploaded: one line, exit 2."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from sapari_nb import Client
from sapari_nb.cli import main
from sapari_server.embedded import EmbeddedServer


def _closed_port() -> int:
    # A port nothing listens on: an edit that got past its checks would fail here with
    # "cannot reach" (exit 1), not with the flag's own message (exit 2).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "talk.mp4"
    path.write_bytes(b"not really a video, never read: the checks come first")
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """``sapari-nb ARGV`` in this process: its exit code and stderr."""
    try:
        rc = main(list(argv))
    except SystemExit as e:  # argparse's own errors exit
        rc = int(e.code or 0)
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("flag, value, message", [
    ("--crf", "99", "--crf must be between 0 and 51"),
    ("--crf", "-1", "--crf must be between 0 and 51"),
    ("--crf", "abc", "--crf must be a whole number"),
    ("--preset", "bogus", "--preset must be one of ultrafast, superfast, veryfast, faster, "
                          "fast, medium, slow"),
    ("--min-silence", "-1", "--min-silence must be between"),
    ("--min-silence", "0", "--min-silence must be between"),
    ("--min-silence", "nan", "--min-silence must be between"),
    ("--padding", "-0.5", "--padding must be between 0 and"),
    ("--threshold-db", "5", "--threshold-db must be between -100 and 0"),
    ("--threshold-db", "loud", "--threshold-db must be a number or 'auto'"),
])
def test_bad_values_refused_before_upload(capsys: pytest.CaptureFixture[str], video: Path,
                                          tmp_path: Path, flag: str, value: str,
                                          message: str) -> None:
    server = f"http://127.0.0.1:{_closed_port()}"
    rc, err = _run(capsys, "edit", str(video), "-o", str(tmp_path / "o.mp4"),
                   "--server", server, "--token", "t", f"{flag}={value}")
    assert rc == 2, err
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o.mp4").exists()


def test_good_values_pass_the_checks(capsys: pytest.CaptureFixture[str], video: Path,
                                     tmp_path: Path) -> None:
    port = _closed_port()
    rc, err = _run(capsys, "edit", str(video), "-o", str(tmp_path / "o.mp4"), "--server",
                   f"http://127.0.0.1:{port}", "--token", "t", "--crf", "51", "--preset", "slow",
                   "--min-silence", "0.3", "--padding", "0", "--threshold-db", "auto")
    # Past the checks, it tries the server: which is down, said in one line.
    assert rc == 1
    assert err.strip() == (f"sapari-nb edit: cannot reach the sapari-nb server at "
                           f"http://127.0.0.1:{port}: connection refused")


@pytest.mark.parametrize("kind", ["empty", "folder"])
def test_input_must_be_a_non_empty_file(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                        kind: str) -> None:
    src = tmp_path / "in.mp4"
    if kind == "empty":
        src.write_bytes(b"")
    else:
        src.mkdir()
    rc, err = _run(capsys, "edit", str(src), "-o", str(tmp_path / "o.mp4"), "--server",
                   f"http://127.0.0.1:{_closed_port()}", "--token", "t")
    assert rc == 2
    assert str(src) in err and len(err.strip().splitlines()) == 1
    assert {"empty": "is empty", "folder": "not a regular file"}[kind] in err


def test_token_and_server_from_the_environment(capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch, video: Path,
                                               tmp_path: Path, server: EmbeddedServer) -> None:
    monkeypatch.setenv("SAPARI_SERVER", server.url)
    monkeypatch.setenv("SAPARI_TOKEN", server.token)
    monkeypatch.delenv("SAPARI_URL", raising=False)
    with Client(server.url, server.token, progress=False) as c:
        before = {p.id for p in c.projects()}
        rc, err = _run(capsys, "edit", str(video), "-o", str(tmp_path / "o.mp4"), "-q", "--keep")
        # It reached the server with the token (the bogus file then failed processing) ...
        assert rc == 1, err
        assert "failed" in err and "--token" not in err
        made = [p for p in c.projects() if p.id not in before]
        assert len(made) == 1
        # ... and the error names the user's own file, not the server's copy.
        assert str(video) in err and "source.mp4" not in err
