"""Headless batches: one papermill run of the batch notebook per input, on one shared server.

``run(inputs, outdir)`` (and ``sapari-nb batch``) starts the embedded job server once, or
uses ``server``/``token``, and runs ``notebooks/03-batch.ipynb`` (or ``notebook``) once per
input with papermill, ``parallel`` at a time from threads. Each notebook edits its input at
batch priority and writes ``<stem>.<container>``, ``<stem>.result.json`` and ``<stem>.png``
into ``outdir``; the executed notebook is kept as ``<stem>.ipynb`` beside them. One input
failing never stops the others. At the end ``report.csv`` and ``report.html`` summarize
every input, failures with their readable reason.

The API token reaches the kernels through their environment (``SAPARI_TOKEN``), never as a
parameter: papermill writes parameters into every executed notebook it keeps.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tqdm.auto import tqdm

from .cli_checks import check_input
from .outputs import atomic_output, clashes, same_file

# What the runner sets for each input: a batch notebook's parameters cell must define them.
PER_INPUT = ("input_path", "output_dir", "output_name", "server_url")
RESERVED = (*PER_INPUT, "token")
KERNEL = "python3"
NOTEBOOK_NAME = "03-batch.ipynb"
REPORTS = ("report.csv", "report.html")


class BatchError(ValueError):
    """The batch cannot start (an argument is wrong); nothing was run. One sentence."""


class BatchFailed(Exception):
    """``strict=True`` and some inputs failed; ``rows`` holds every input's row."""

    def __init__(self, rows: list[BatchRow]) -> None:
        failed = [r for r in rows if r.status != "ok"]
        super().__init__(f"{len(failed)} of {len(rows)} inputs failed: " + "; ".join(
            f"{Path(r.input).name}: {r.error}" for r in failed))
        self.rows = rows


@dataclass
class BatchRow:
    """One input of a batch: what it became, or why it failed (``error``, one sentence)."""

    input: str
    status: str = "failed"  # "ok" or "failed"
    error: str | None = None
    output: str | None = None
    notebook: str | None = None
    result_json: str | None = None
    plot: str | None = None
    duration_before: float | None = None
    duration_after: float | None = None
    seconds_cut: float | None = None
    edits: int = 0
    edits_by_kind: dict[str, int] = field(default_factory=dict)
    seconds_cut_by_kind: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class _Plan:
    src: Path
    stem: str
    error: str | None  # known before running anything (missing, empty, a folder)


def default_notebook() -> Path:
    """The batch notebook: packaged beside this module, or the repository's ``notebooks/``."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "notebooks" / NOTEBOOK_NAME, here.parent / "notebooks" / NOTEBOOK_NAME):
        if candidate.is_file():
            return candidate
    raise BatchError(f"the batch notebook {NOTEBOOK_NAME} is not installed with this copy of "
                     "sapari-nb: pass notebook= (--notebook) with the path of "
                     f"notebooks/{NOTEBOOK_NAME} from the repository, or your own")


def parse_value(text: str) -> Any:
    """A ``-p KEY VALUE`` value: JSON when it parses (numbers, true, {"crf": 23}), else text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def merge_params(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """``analysis.min_silence 0.8`` sets one key of the ``analysis`` dict; other keys whole."""
    params: dict[str, Any] = {}
    for key, value in pairs:
        head, dot, sub = key.partition(".")
        if dot:
            inner = params.setdefault(head, {})
            if not isinstance(inner, dict):
                raise BatchError(f"parameter {head} is set both whole and as {key}: use one")
            inner[sub] = value
        else:
            if isinstance(params.get(key), dict) and isinstance(value, dict):
                params[key] = {**params[key], **value}
            else:
                params[key] = value
    return params


def _check_params(notebook: Path, params: Mapping[str, Any]) -> None:
    """Refuse, before anything runs, parameters the notebook does not have or the server
    would refuse after a long upload (the API's own models check the settings)."""
    from papermill import inspect_notebook
    from pydantic import ValidationError

    from sapari_server.api.schemas import AnalysisSettings, ExportRequest

    from .client import readable_detail

    try:
        known = inspect_notebook(str(notebook))
    except Exception as e:  # a file that is not a notebook: papermill's reason in one line
        raise BatchError(f"cannot read the notebook {notebook}: {e}") from None
    missing = [p for p in PER_INPUT if p not in known]
    if missing:
        raise BatchError(f"the notebook {notebook} has no parameter {', '.join(missing)}: a "
                         "batch notebook's cell tagged 'parameters' must define "
                         f"{', '.join(PER_INPUT)} (see notebooks/{NOTEBOOK_NAME})")
    for key in params:
        if key in RESERVED:
            how = ("--token or token=" if key == "token"
                   else "--server" if key == "server_url" else "the batch, for each input")
            raise BatchError(f"parameter {key} is set by {how}: do not pass it with -p")
        if key not in known:
            raise BatchError(f"the notebook {notebook.name} has no parameter {key!r}; it has: "
                             f"{', '.join(k for k in known if k not in RESERVED)}")
    for key, model in (("analysis", AnalysisSettings), ("export", ExportRequest)):
        value = params.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise BatchError(f"parameter {key} must be a JSON object, e.g. "
                             f"-p {key} '{{\"crf\": 23}}' or -p {key}.crf 23, not {value!r}")
        try:
            model.model_validate(value)
        except ValidationError as e:
            raise BatchError(f"parameter {key}: "
                             f"{readable_detail(e.errors(include_url=False))}") from None


def _plan(inputs: Sequence[str | os.PathLike[str]], outdir: Path,
          container: str) -> list[_Plan]:
    if not inputs:
        raise BatchError("give at least one INPUT recording")
    if outdir.exists() and not outdir.is_dir():
        raise BatchError(f"-o {outdir} is a file: name a folder for the results")
    plans: list[_Plan] = []
    used: set[str] = {Path(r).stem.lower() for r in REPORTS}
    for raw in inputs:
        src = Path(raw).expanduser()
        if same_file(src, outdir):
            raise BatchError(f"-o {outdir} is one of the inputs: name a separate folder for "
                             "the results")
        stem, n = src.stem or "input", 1
        while stem.lower() in used:  # two inputs named talk.mp4: talk and talk-2
            n += 1
            stem = f"{src.stem}-{n}"
        used.add(stem.lower())
        plans.append(_Plan(src.resolve() if src.exists() else src, stem, check_input(src)))
    ins = [("input", p.src) for p in plans]
    outs = [(f"the result for {p.src.name}", outdir / f"{p.stem}{ext}") for p in plans
            for ext in (f".{container}", ".ipynb", ".png", ".result.json")]
    outs += [("the report", outdir / name) for name in REPORTS]
    problem = clashes(ins, outs)
    if problem:
        raise BatchError(f"{problem} (choose another -o folder)")
    return plans


def _kernel_manager(env: Mapping[str, str], stderr: IO[bytes]) -> type:
    """A kernel manager class whose kernels get ``env`` on top of this process's (the token
    travels there, not through parameters papermill writes into the kept notebooks) and
    write their own log to ``stderr``: a batch's terminal shows its progress bar, not each
    kernel's start-up warnings. Cells' output still goes into the executed notebook."""
    from jupyter_client.manager import AsyncKernelManager

    class _BatchKernelManager(AsyncKernelManager):  # type: ignore[misc]
        async def start_kernel(self, **kw: Any) -> None:
            kw["env"] = {**os.environ, **kw.get("env", {}), **env}
            kw.setdefault("stderr", stderr)
            await super().start_kernel(**kw)

    return _BatchKernelManager


def _last_words(log: IO[bytes]) -> str:
    """The kernel's last error line, to explain a kernel that died (warnings skipped)."""
    log.seek(0)
    lines = [ln.strip() for ln in log.read().decode(errors="replace").splitlines()]
    lines = [ln for ln in lines if ln and "WARNING" not in ln]
    return lines[-1] if lines else ""


def _execute(notebook: Path, executed: Path, km_class: type,
             parameters: dict[str, Any]) -> str | None:
    """Run one notebook; its failure as one readable line, or None."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    try:
        papermill.execute_notebook(
            str(notebook), str(executed), parameters=parameters, kernel_name=KERNEL,
            progress_bar=False, log_output=False, kernel_manager_class=km_class)
    except PapermillExecutionError as e:
        # The notebook's own error, not its traceback (the traceback stays in the notebook).
        return str(e.evalue) if e.ename == "RuntimeError" else f"{e.ename}: {e.evalue}"
    except Exception as e:  # the kernel could not start or died: say so in one line
        return f"the notebook could not run ({type(e).__name__}: {e})"
    return None


def _run_one(plan: _Plan, notebook: Path, outdir: Path, container: str,
             params: Mapping[str, Any], server_url: str, env: Mapping[str, str]) -> BatchRow:
    row = BatchRow(input=str(plan.src))
    if plan.error:
        row.error = plan.error
        return row
    started = time.perf_counter()
    executed = outdir / f"{plan.stem}.ipynb"
    result_path = outdir / f"{plan.stem}.result.json"
    # A result left by an earlier batch into the same folder must not pass for this one's.
    for old in (result_path, outdir / f"{plan.stem}.png"):
        old.unlink(missing_ok=True)
    with tempfile.TemporaryFile() as log:
        failure = _execute(notebook, executed, _kernel_manager(env, log), {
            **params, "input_path": str(plan.src), "output_dir": str(outdir),
            "output_name": f"{plan.stem}.{container}", "server_url": server_url})
        if failure and not result_path.is_file() and (said := _last_words(log)):
            failure = f"{failure}; the kernel said: {said}"
    row.elapsed = round(time.perf_counter() - started, 3)
    row.notebook = str(executed) if executed.is_file() else None
    record: dict[str, Any] = {}
    if result_path.is_file():
        try:
            record = json.loads(result_path.read_text())
            row.result_json = str(result_path)
        except ValueError:
            failure = failure or f"{result_path} is not valid JSON"
    elif failure is None:
        failure = (f"the notebook ran but wrote no {result_path.name}: is {notebook.name} a "
                   "batch notebook?")
    for name in ("output", "plot", "duration_before", "duration_after", "seconds_cut", "edits",
                 "edits_by_kind", "seconds_cut_by_kind", "timings"):
        if record.get(name) is not None:
            setattr(row, name, record[name])
    row.error = record.get("error") or failure
    row.status = "failed" if row.error else "ok"
    if row.status != "ok":
        row.output = None
    return row


def run(inputs: Sequence[str | os.PathLike[str]], outdir: str | os.PathLike[str], *,
        notebook: str | os.PathLike[str] | None = None, parallel: int = 1,
        params: Mapping[str, Any] | None = None, strict: bool = False,
        server: str | None = None, token: str | None = None, progress: bool = True,
        data_dir: str | os.PathLike[str] | None = None) -> list[BatchRow]:
    """Edit every input with the batch notebook; a row per input, in the inputs' order.

    Without ``server`` an embedded server starts once (``data_dir``, default
    ``~/.sapari-nb``) and stays up for later batches until interpreter exit. ``params`` are
    the notebook's parameters (``analysis``, ``export``, ``priority``, ...). Raises
    ``BatchError`` before running anything when an argument is wrong, and ``BatchFailed``
    (after writing the report) when ``strict`` and some input failed.
    """
    from .client import Client
    from .connect import embedded_server

    if not isinstance(parallel, int) or parallel < 1:
        raise BatchError(f"parallel must be a whole number of 1 or more, not {parallel!r}")
    out = Path(outdir).expanduser()
    nb = Path(notebook).expanduser() if notebook else default_notebook()
    if not nb.is_file():
        raise BatchError(f"the notebook {nb} does not exist")
    params = dict(params or {})
    _check_params(nb, params)
    container = str((params.get("export") or {}).get("container", "mp4"))
    plans = _plan(inputs, out, container)
    token = token or os.environ.get("SAPARI_TOKEN")
    if server and not token:
        raise BatchError(f"no token for {server}: pass token= (--token) or set SAPARI_TOKEN")
    out.mkdir(parents=True, exist_ok=True)

    if server:
        url = server
        # A wrong URL or token is one line now, not the same error in every notebook.
        with Client(url, token or "", progress=False) as c:
            c.me()
    else:
        srv = embedded_server(data_dir, preview_artifacts=False)
        url, token = srv.url, srv.token
    env = {"SAPARI_TOKEN": token or ""}
    rows: list[BatchRow | None] = [None] * len(plans)
    lock = threading.Lock()
    with (tqdm(total=len(plans), desc="batch", unit="input", disable=not progress) as bar,
          ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="sapari-batch") as pool):
        futures = {pool.submit(_run_one, p, nb, out, container, params, url, env): i
                   for i, p in enumerate(plans)}
        try:
            for fut in as_completed(futures):
                row = fut.result()
                with lock:
                    rows[futures[fut]] = row
                    bar.update(1)
                    failed = sum(1 for r in rows if r is not None and r.status != "ok")
                    if failed:
                        bar.set_postfix_str(f"{failed} failed")
        except KeyboardInterrupt:
            # Ctrl-C reached the running kernels too (one process group): their notebooks
            # stop; the inputs not started yet must not start.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    done = [r for r in rows if r is not None]
    write_reports(done, out)
    if strict and any(r.status != "ok" for r in done):
        raise BatchFailed(done)
    return done


def write_reports(rows: Sequence[BatchRow], outdir: Path) -> tuple[Path, Path]:
    """``report.csv`` and ``report.html`` in ``outdir``, each written whole or not at all."""
    from . import report

    csv_path, html_path = outdir / REPORTS[0], outdir / REPORTS[1]
    with atomic_output(csv_path) as tmp:
        report.write_csv(rows, tmp)
    with atomic_output(html_path) as tmp:
        report.write_html(rows, tmp)
    return csv_path, html_path
