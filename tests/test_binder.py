"""Binder: an environment built from binder/ alone runs the quickstart notebook.

repo2docker, when a repository has a binder/ folder, reads only that folder: it copies the
repository in and runs `pip install -r binder/requirements.txt` from the repository root. This
test does the same in a fresh virtual environment over a clean clone of HEAD (so the widgets'
bundle, git-ignored, must be built by the wheel's hook, as on Binder, whose image has Node),
then runs 01-quickstart headless with papermill from that environment: embedded server, local
transcription, no API key. It also checks that JupyterLab there serves the kernel's server
through jupyter-server-proxy, the only way the browser on Binder reaches it.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import av
import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def run(cmd: list[str | Path], **kw: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,  # type: ignore[call-overload]
                          **kw)
    assert done.returncode == 0, (f"{' '.join(map(str, cmd))} failed (exit {done.returncode}):"
                                  f"\n{done.stdout[-4000:]}{done.stderr[-4000:]}")
    return done


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binder_env(tmp_path: Path, venv: Path) -> dict[str, str]:
    """A user's environment on Binder: the venv first on PATH, a home of its own, no keys,
    no server configured."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SAPARI_", "OPENAI_", "JUPYTER", "VIRTUAL_ENV", "PYTHON"))}
    env.update(HOME=str(home), PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
               PYTHONNOUSERSITE="1")
    # The suite's HOME is a temporary folder; keep the real user's pip configuration (its
    # package mirrors) and reuse their pip and npm caches, as a Binder build reuses its
    # layers: the install costs the build, not the downloads.
    real_home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    env.setdefault("PIP_CACHE_DIR", str(real_home / ".cache" / "pip"))
    for conf in (real_home / ".config" / "pip" / "pip.conf", real_home / ".pip" / "pip.conf"):
        if conf.is_file() and "PIP_CONFIG_FILE" not in env:
            env["PIP_CONFIG_FILE"] = str(conf)
    if (real_home / ".npm").is_dir():
        env.setdefault("npm_config_cache", str(real_home / ".npm"))
    return env


def wait_http(url: str, proc: subprocess.Popen[str], log: Path, timeout: float = 60.0,
              **kw: object) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=2, **kw)  # type: ignore[arg-type]
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{url} never answered:\n{log.read_text()[-4000:]}")
            time.sleep(0.3)


def test_binder_environment_runs_the_quickstart(tmp_path: Path) -> None:
    if shutil.which("git") is None or shutil.which("npm") is None:
        pytest.skip("needs git, and npm to build the widgets' bundle (Binder's image has Node)")
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing to clone")
    clone = tmp_path / "repo"
    run(["git", "clone", "--quiet", "--no-hardlinks", ROOT, clone])
    assert (clone / "binder" / "requirements.txt").is_file()
    assert not (clone / "sapari_nb" / "static" / "sapari.js").exists()

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv])
    env = binder_env(tmp_path, venv)
    started = time.monotonic()
    run([venv / "bin" / "python", "-m", "pip", "install", "-q", "-r",
         "binder/requirements.txt"], cwd=clone, env=env)
    install_s = time.monotonic() - started

    # The project came from binder/requirements.txt into the venv, bundle included.
    where = run([venv / "bin" / "python", "-c",
                 "import pathlib, sapari_nb; p = pathlib.Path(sapari_nb.__file__).parent; "
                 "print(p); print((p / 'static' / 'sapari.js').stat().st_size)"],
                cwd=tmp_path, env=env).stdout.split()
    assert where[0].startswith(str(venv)), where
    assert int(where[1]) > 1000, where

    # The quickstart as a Binder user runs it: from its folder, results in ./output.
    nb_dir = clone / "notebooks"
    executed = tmp_path / "quickstart-run.ipynb"
    started = time.monotonic()
    run([venv / "bin" / "papermill", "-k", "python3", "--cwd", nb_dir,
         nb_dir / "01-quickstart.ipynb", executed], cwd=nb_dir, env=env)
    notebook_s = time.monotonic() - started

    book = json.loads(executed.read_text())
    outputs = [o for c in book["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    text = "".join("".join(o.get("text", "")) for o in outputs if o["output_type"] == "stream")
    assert "transcript:local" in text, text  # local Whisper, no API key
    views = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
             and "ProjectView" in "".join(o["data"].get("text/plain", ""))]
    assert views, "the ProjectView widget was not displayed"
    videos = [o for o in outputs if '<video src="output/talk-cut.mp4"'
              in "".join(o.get("data", {}).get("text/html", ""))]
    assert videos, "the cut video is not shown inline"

    cut = nb_dir / "output" / "talk-cut.mp4"
    with av.open(str(cut)) as f:
        assert f.streams.video and f.streams.audio
        duration = float(f.duration or 0) / av.time_base
    assert 25.0 < duration < 37.0, duration  # the 38 s sample minus its pauses and false start

    # JupyterLab from the same venv forwards <base_url>proxy/PORT/ to a loopback server.
    jport, sport, token = free_port(), free_port(), "binder-test"
    jlog, slog = tmp_path / "jupyter.log", tmp_path / "serve.log"
    with open(jlog, "w") as jout, open(slog, "w") as sout:
        jupyter = subprocess.Popen(
            [str(venv / "bin" / "jupyter"), "lab", "--no-browser", "--ip=127.0.0.1",
             f"--port={jport}", "--allow-root", f"--IdentityProvider.token={token}",
             f"--ServerApp.root_dir={clone}", "--ServerApp.base_url=/user/tester/"],
            stdout=jout, stderr=subprocess.STDOUT, env=env, text=True)
        serve = subprocess.Popen(
            [str(venv / "bin" / "sapari-nb"), "serve", "--port", str(sport), "--data-dir",
             str(tmp_path / "serve-data")], stdout=sout, stderr=subprocess.STDOUT, env=env,
            text=True)
        try:
            wait_http(f"http://127.0.0.1:{sport}/health", serve, slog)
            r = wait_http(f"http://127.0.0.1:{jport}/user/tester/proxy/{sport}/health",
                          jupyter, jlog, headers={"Authorization": f"token {token}"})
            assert r.status_code == 200 and r.json().get("status") == "ok", (r.status_code,
                                                                              r.text)
        finally:
            for proc in (serve, jupyter):
                proc.terminate()
            for proc in (serve, jupyter):
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
    print(f"\nbinder: pip install -r binder/requirements.txt {install_s:.0f} s, "
          f"quickstart notebook {notebook_s:.1f} s")
