"""nbval runs of the tutorial notebooks: isolated like the rest of the suite.

The kernels nbval starts inherit this process's environment, so the suite's run folder
(TMPDIR, HOME, SAPARI_DATA_DIR: see tests/conftest.py) holds everything they write, also when
only `pytest notebooks/` runs. The notebooks put their results in ./output beside themselves,
for JupyterLab to show; under test SAPARI_NOTEBOOK_OUT sends them to the run folder instead.
"""

from __future__ import annotations

import os
import tempfile

import pytest

from tests.conftest import pytest_configure as _isolate
from tests.conftest import pytest_unconfigure  # noqa: F401  (removes the run folder)


def pytest_configure(config: pytest.Config) -> None:
    _isolate(config)  # a no-op when tests/conftest.py already did it
    os.environ["SAPARI_NOTEBOOK_OUT"] = tempfile.mkdtemp(prefix="notebook-output-")
    # A deployed server configured in the shell would make 04-remote-server use it.
    for name in ("SAPARI_SERVER", "SAPARI_URL", "SAPARI_TOKEN"):
        os.environ.pop(name, None)
