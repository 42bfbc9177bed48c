import os

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

from tests.fakes_fixtures import *  # noqa: E402,F401,F403  (fixtures writing fake dataset layouts)


@pytest.fixture(autouse=True)
def _limit_threads():
    """Two xdist workers on two cores: one thread each avoids oversubscription."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
