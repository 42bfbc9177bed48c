import os

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

try:  # fixtures writing fake dataset layouts
    from tests.fakes_fixtures import *  # noqa: F401,F403
except ImportError:
    pass


@pytest.fixture(autouse=True)
def _limit_threads():
    """Two xdist workers on two cores: one thread each avoids oversubscription."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
