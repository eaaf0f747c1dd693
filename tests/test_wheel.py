"""The wheel built from a clean clone ships the widgets' bundle and works without npm."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{done.stdout}{done.stderr}"
    return done


def test_wheel_from_a_clean_clone_ships_the_bundle(tmp_path: Path) -> None:
    if shutil.which("npm") is None or shutil.which("git") is None:
        pytest.skip("building the wheel needs git and npm on PATH")
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing to clone")
    # A clone of HEAD: the git-ignored bundle (and any uncommitted work) is not in it, so the
    # build hook must make the bundle itself.
    clone = tmp_path / "clone"
    run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)])
    assert not (clone / "sapari_nb" / "static" / "sapari.js").exists()

    dist = tmp_path / "dist"
    env = dict(os.environ)
    env.pop("SAPARI_SKIP_BUNDLE", None)
    # pip's build isolation fetches hatchling (from its cache after the first run).
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(clone)],
        env=env)
    wheels = list(dist.glob("sapari_nb-*.whl"))
    assert len(wheels) == 1, wheels
    listing = run(["unzip", "-l", str(wheels[0])]).stdout
    for name in ("sapari_nb/static/sapari.js", "sapari_nb/static/sapari.css"):
        assert name in listing, f"{name} is not in the wheel:\n{listing}"

    # A fresh venv (no pip of its own: the outer pip installs into it) with the wheel alone;
    # its dependencies come from this environment's site-packages, appended to the path
    # (the checkout itself is not importable there: its editable hook is a .pth file,
    # which Python reads only in real site folders).
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    py = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q",
         str(wheels[0])])
    bare_path = str(venv / "bin")  # no npm, no node
    assert shutil.which("npm", path=bare_path) is None
    check = (
        "import pathlib, sapari_nb\n"
        "cls = sapari_nb.ProjectView\n"
        "here = pathlib.Path(sapari_nb.__file__).parent\n"
        f"assert str(here).startswith({str(venv)!r}), here\n"
        "js = here / 'static' / 'sapari.js'\n"
        "assert js.stat().st_size > 1000, js\n"
        "print(cls.__name__, js.stat().st_size)\n"
    )
    deps = sysconfig.get_paths()["purelib"]
    out = run([str(py), "-c", check], cwd=tmp_path,
              env={"PATH": bare_path, "HOME": str(tmp_path), "PYTHONPATH": deps,
                   "PYTHONNOUSERSITE": "1"}).stdout
    assert out.startswith("ProjectView"), out
