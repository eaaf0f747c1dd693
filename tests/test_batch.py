"""Headless batches: the batch notebook under papermill, ``sapari-nb batch`` and its report.

Every notebook runs in a real ``python3`` kernel against a real job server (the session's
uvicorn server, or the embedded one the command starts). One CLI batch over four generated
talks and two broken files serves several tests.
"""

from __future__ import annotations

import csv
import html
import json
import os
import subprocess
import sys
from pathlib import Path

import av
import papermill
import pytest

from sapari_nb import Client
from sapari_nb.batch import BatchError, BatchFailed, BatchRow, run
from sapari_nb.cli import main
from sapari_server.embedded import EmbeddedServer
from sapari_server.queue.factory import PRIORITIES
from sapari_testkit.generate import TalkTruth, generate_talk, make_bad_inputs

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "03-batch.ipynb"
PAUSES = ([0.8, 1.2], [1.0], [0.6, 1.5], [2.0])
STEPS = {"upload", "process", "analyze", "render", "download", "total"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[Path, TalkTruth], list[Path]]:
    """Four short talks (5-8 s) and two files that are no recordings."""
    d = tmp_path_factory.mktemp("batch-in")
    talks = {}
    for i, pauses in enumerate(PAUSES):
        path = d / f"talk{i}.mp4"
        talks[path] = generate_talk(path, pauses=pauses, speech_lengths=[1.5] * (len(pauses) + 1),
                                    seed=i, lead_silence=0.5, tail_silence=0.5)
    bad = make_bad_inputs(d / "bad")
    return talks, [bad["truncated"], bad["text"]]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sapari_nb.cli", "batch", *args],
                          capture_output=True, text=True, timeout=240,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def cli_batch(inputs: tuple[dict[Path, TalkTruth], list[Path]],
              tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    """``sapari-nb batch`` on its own embedded server (silences only, like the session's)."""
    talks, bad = inputs
    out = tmp_path_factory.mktemp("batch-out")
    data = tmp_path_factory.mktemp("batch-data")
    proc = _cli(*map(str, [*talks, *bad]), "-o", str(out), "--data-dir", str(data), "-q",
                env={"SAPARI_TRANSCRIBER": "none"})
    return proc, out, data


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _duration(path: Path) -> float:
    with av.open(str(path)) as f:
        return float(f.duration or 0) / av.time_base


def test_papermill_runs_the_batch_notebook(server: EmbeddedServer, client: Client,
                                           inputs: tuple[dict[Path, TalkTruth], list[Path]],
                                           tmp_path: Path) -> None:
    src, truth = next(iter(inputs[0].items()))
    executed = tmp_path / "run.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK), str(executed), kernel_name="python3", progress_bar=False,
        parameters={"input_path": str(src), "output_dir": str(tmp_path / "out"),
                    "server_url": server.url, "token": server.token,
                    "analysis": {"min_silence": 0.5}, "keep_project": True})
    record = json.loads((tmp_path / "out" / "talk0.result.json").read_text())
    assert record["status"] == "ok" and record["error"] is None
    assert record["duration_before"] == pytest.approx(truth.duration, abs=0.1)
    # Lead, tail and both pauses are cut, padding kept around speech.
    assert record["edits_by_kind"] == {"silence": 4}
    assert 1.5 < record["seconds_cut_by_kind"]["silence"] < 3.0
    assert record["duration_after"] == pytest.approx(truth.duration - record["seconds_cut"],
                                                     abs=0.05)
    assert set(record["timings"]) == STEPS and all(v >= 0 for v in record["timings"].values())
    out = Path(record["output"])
    assert out == tmp_path / "out" / "talk0.mp4"
    assert _duration(out) == pytest.approx(record["duration_after"], abs=0.1)
    assert Path(record["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The figures are the notebook's output too, not only a file.
    nb = json.loads(executed.read_text())
    shown = [o["data"]["application/json"] for c in nb["cells"] for o in c.get("outputs", [])
             if "application/json" in o.get("data", {})]
    assert shown and shown[0]["seconds_cut"] == record["seconds_cut"]
    # Analysis and render were queued at batch priority.
    project = next(p for p in client.projects() if p.name == "batch: talk0.mp4")
    jobs = [client.job(a.job_id) for a in client.analyses(project.id) if a.job_id]
    jobs += [client.job(e.job_id) for e in client.exports(project.id) if e.job_id]
    assert len(jobs) == 2 and {j.priority for j in jobs} == {PRIORITIES["batch"]}
    client.delete_project(project.id, purge=True)


def test_batch_edits_good_inputs_and_reports_bad_ones(
        cli_batch: tuple[subprocess.CompletedProcess[str], Path, Path],
        inputs: tuple[dict[Path, TalkTruth], list[Path]]) -> None:
    proc, out, data = cli_batch
    talks, bad = inputs
    assert proc.returncode == 0, proc.stderr
    assert "6 inputs: 4 edited, 2 failed" in proc.stdout
    rows = _csv_rows(out / "report.csv")
    assert [r["input"] for r in rows] == [str(p) for p in [*talks, *bad]]
    for row, (src, truth) in zip(rows, talks.items(), strict=False):
        assert row["status"] == "ok" and row["error"] == ""
        assert float(row["duration_before"]) == pytest.approx(truth.duration, abs=0.1)
        assert json.loads(row["edits_by_kind"])["silence"] >= 2
        assert float(row["seconds_cut"]) > 0.5
        assert row["output"] == str(out / f"{src.stem}.mp4")
        assert _duration(Path(row["output"])) == pytest.approx(float(row["duration_after"]),
                                                               abs=0.1)
    failed = {Path(r["input"]).name: r["error"] for r in rows[4:]}
    assert [r["status"] for r in rows[4:]] == ["failed", "failed"]
    assert "cut short" in failed["truncated.mp4"]
    assert "not a media file" in failed["text.mp4"]
    for name, error in failed.items():
        assert name in error and "Traceback" not in error and "\n" not in error
        assert not (out / f"{Path(name).stem}.mp4").exists()
    # Every executed notebook is kept beside its output, failed ones too.
    for src in [*talks, *bad]:
        assert (out / f"{src.stem}.ipynb").is_file()
    page = (out / "report.html").read_text()
    for error in failed.values():
        assert html.escape(error) in page
    assert page.count("data:image/png;base64,") == 4
    assert 'href="talk0.mp4"' in page and 'href="talk0.ipynb"' in page
    # The token reached the kernels by their environment: no kept notebook holds it.
    token = (data / "token").read_text().strip()
    assert all(token not in p.read_text() for p in out.glob("*.ipynb"))


def test_parallel_runs_give_the_same_rows(
        cli_batch: tuple[subprocess.CompletedProcess[str], Path, Path], server: EmbeddedServer,
        inputs: tuple[dict[Path, TalkTruth], list[Path]], tmp_path: Path) -> None:
    talks, bad = inputs
    rows = run([*talks, *bad], tmp_path, parallel=2, server=server.url, token=server.token,
               progress=False)
    assert all(isinstance(r, BatchRow) for r in rows)
    serial = _csv_rows(cli_batch[1] / "report.csv")
    assert len(rows) == len(serial)
    for mine, theirs in zip(rows, serial, strict=True):
        d = mine.to_dict()
        assert d["input"] == theirs["input"]
        assert d["status"] == theirs["status"]
        assert (d["error"] or "") == theirs["error"]
        assert d["edits_by_kind"] == json.loads(theirs["edits_by_kind"])
        if mine.status == "ok":
            assert mine.duration_after == pytest.approx(float(theirs["duration_after"]),
                                                        abs=0.05)
            assert Path(d["output"]).parent == tmp_path


def test_strict_exits_nonzero_when_an_input_fails(
        server: EmbeddedServer, inputs: tuple[dict[Path, TalkTruth], list[Path]],
        tmp_path: Path) -> None:
    text = inputs[1][1]
    missing = tmp_path / "not-there.mp4"
    args = [str(text), str(missing), "-o", str(tmp_path / "out"), "--server", server.url,
            "--token", server.token, "-q"]
    proc = _cli(*args, "--strict")
    assert proc.returncode == 1
    assert f"failed: {missing}: {missing} does not exist" in proc.stderr
    rows = _csv_rows(tmp_path / "out" / "report.csv")
    assert [r["status"] for r in rows] == ["failed", "failed"]
    assert "not a media file" in rows[0]["error"]
    # From Python: the report is written, then BatchFailed carries every row.
    with pytest.raises(BatchFailed, match="1 of 1 inputs failed: not-there.mp4: .* does not "
                                          "exist") as caught:
        run([missing], tmp_path / "py", strict=True, server=server.url, token=server.token,
            progress=False)
    assert caught.value.rows[0].error == f"{missing} does not exist"
    assert (tmp_path / "py" / "report.html").is_file()


@pytest.mark.parametrize("extra, says", [
    (["-p", "analysis.min_silence", "99"], "analysis: min_silence: Input should be less than"),
    (["-p", "export", '{"crf": 23, "codec": "x"}'], "export: codec: Extra inputs"),
    (["-p", "colour", "red"], "has no parameter 'colour'"),
    (["-p", "input_path", "x.mp4"], "parameter input_path is set by the batch"),
    (["--parallel", "0"], "--parallel must be 1 or more"),
])
def test_arguments_are_checked_before_anything_runs(
        inputs: tuple[dict[Path, TalkTruth], list[Path]], tmp_path: Path,
        capsys: pytest.CaptureFixture[str], extra: list[str], says: str) -> None:
    src = next(iter(inputs[0]))
    assert main(["batch", str(src), "-o", str(tmp_path / "out"), *extra]) == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_outdir_may_not_be_an_input_or_overwrite_one(
        inputs: tuple[dict[Path, TalkTruth], list[Path]], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    src = next(iter(inputs[0]))
    assert main(["batch", str(src), str(tmp_path), "-o", str(tmp_path)]) == 2
    assert f"-o {tmp_path} is one of the inputs" in capsys.readouterr().err
    # Results into the inputs' own folder would write talk0.mp4 over talk0.mp4.
    with pytest.raises(BatchError, match="refusing to overwrite an input"):
        run([src], src.parent, progress=False)
