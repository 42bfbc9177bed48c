"""Every config in conf/ composes and instantiates."""

from pathlib import Path

import hydra
import pytest
from omegaconf import OmegaConf

from tests.helpers import CONF, compose_config

MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
DATASETS = sorted(p.stem for p in (CONF / "data").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("data", DATASETS)
@pytest.mark.parametrize("model", MODELS)
def test_model_and_data_instantiate(tmp_path: Path, model: str, data: str):
    cfg = compose_config(tmp_path, f"model={model}", f"data={data}")
    net = hydra.utils.instantiate(cfg.model, _convert_="object")
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="object")
    # Every method learns but the no-learning references.
    assert net.learns == (model not in ("framediff", "background"))
    assert datamodule.spec.length == cfg.model.clip.length


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes(tmp_path: Path, experiment: str):
    cfg = compose_config(tmp_path, f"experiment={experiment}")
    hydra.utils.instantiate(cfg.model, _convert_="object")
    hydra.utils.instantiate(cfg.data, _convert_="object")
    assert cfg.trainer.max_epochs >= 1
    if experiment.endswith("_cpu"):  # reduced CPU recipes run eager (inductor's CPU backward
        assert cfg.trainer.accelerator == "cpu"  # segfaulted on STD-AE with torch 2.13)
        assert not cfg.model.get("compile") and not cfg.model.get("channels_last")


def test_unknown_group_value_fails_clearly(tmp_path: Path):
    with pytest.raises(Exception, match="Could not find 'model/nosuchmodel'"):
        compose_config(tmp_path, "model=nosuchmodel")


def test_unknown_key_fails_clearly(tmp_path: Path):
    with pytest.raises(Exception, match="nosuchkey"):
        compose_config(tmp_path, "model.nosuchkey=1")


@pytest.mark.parametrize("logger", sorted(p.stem for p in (CONF / "logger").glob("*.yaml")))
def test_loggers_instantiate(tmp_path: Path, logger: str):
    from vad.utils import instantiate_loggers

    cfg = compose_config(tmp_path, f"logger={logger}")
    loggers = instantiate_loggers(cfg.logger)
    assert len(loggers) == (3 if logger == "many" else 1)


@pytest.mark.parametrize("trainer", ["cpu", "gpu", "ddp"])
def test_trainer_configs_compose(tmp_path: Path, trainer: str):
    cfg = compose_config(tmp_path, f"trainer={trainer}")
    expected = {"cpu": "32-true", "gpu": "bf16-mixed", "ddp": "bf16-mixed"}[trainer]
    assert cfg.trainer.precision == expected



def test_flow_follows_the_training_mode(tmp_path: Path):
    """Optical flow is on exactly for the modes trained on it, with no data.flow on the CLI."""
    def flow(*overrides):
        cfg = compose_config(tmp_path, *overrides)
        return hydra.utils.instantiate(cfg.data, _convert_="object").flow

    assert flow() is None and flow("model=topheavy") is None
    distill = flow("model=topheavy", "model.training=distill")
    assert distill.method == "tvl1" and distill.bound == 8.0 and distill.splits == ("train",)
    assert flow("model=ae3d", "model.training=joint", "data.flow={bound:4}").bound == 4.0
    assert flow("model=topheavy", "model.training=joint", "data.flow=null") is None
    # Every data config follows the method the same way.
    rules = {data: OmegaConf.load(CONF / "data" / f"{data}.yaml")._get_node("flow")._value()
             for data in DATASETS}
    assert set(rules.values()) == {"${flow_for:${oc.select:model.training,plain}}"}, rules
