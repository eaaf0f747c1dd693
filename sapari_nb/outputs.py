"""Writing results safely: never over an input, never a partial file under the user's name."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


def same_file(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` are one file: the same path, a symlink to it, a hard link."""
    try:
        if os.path.samefile(a, b):  # same inode: hard links and symlinks included
            return True
    except OSError:
        pass  # one of them does not exist (yet)
    return a.resolve() == b.resolve()


def clashes(inputs: Iterable[tuple[str, Path]],
            outputs: Iterable[tuple[str, Path]]) -> str | None:
    """The first output that would overwrite an input or another output, as a sentence.

    ``inputs`` and ``outputs`` are (what, path) pairs, e.g. ("-o", Path("cut.mp4")).
    """
    ins, outs = list(inputs), list(outputs)
    for what, out in outs:
        for in_what, src in ins:
            if same_file(out, src):
                how = "is" if out == src else "is the same file as"
                return (f"{what} {out} {how} the {in_what} {src}: refusing to overwrite an "
                        "input; name a new file")
    for i, (what, out) in enumerate(outs):
        for other_what, other in outs[:i]:
            if same_file(out, other):
                return (f"{what} {out} and {other_what} {other} name the same file: give them "
                        "different names")
    return None


@contextmanager
def atomic_output(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``dest``, renamed onto it only if the block succeeds.

    A failure or Ctrl-C deletes the temporary file: ``dest`` is either the old file,
    untouched, or the whole new one. The temporary name starts with a dot and ends with
    ``.part`` so a half-written file is never taken for a result.
    """
    out = Path(dest)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # mkstemp makes the file 0600; a result gets the usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(dest: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_output(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)
