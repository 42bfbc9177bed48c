"""Fixtures with the fake dataset layouts of ``tests/data/make_fakes.py``.

``tests/conftest.py`` imports these (``from tests.fakes_fixtures import *``).
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

__all__ = ["fake_copy", "fakes_root"]

_SCRIPT = Path(__file__).parent / "data" / "make_fakes.py"


def _load_make_fakes():
    # Loaded by path: tests/ is not a package, and the script must also run as a plain script.
    spec = importlib.util.spec_from_file_location("vad_tests_make_fakes", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_fakes_module = _load_make_fakes()


@pytest.fixture(scope="session")
def fakes_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All fakes, written once per session (per xdist worker); treat as read-only."""
    return make_fakes_module.make_fakes(tmp_path_factory.mktemp("fakes"))


@pytest.fixture
def fake_copy(fakes_root: Path, tmp_path: Path) -> Callable[[str], Path]:
    """``fake_copy("ped2/frames")``: a private, writable copy of one fake, for breaking it."""

    def copy(relative: str) -> Path:
        target = tmp_path / relative
        shutil.copytree(fakes_root / relative, target)
        return target

    return copy
