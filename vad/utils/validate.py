"""Config checks run right after composition, before anything is built, trained or logged.

Two schemas, neither written twice: every ``_target_`` section's keys are checked against the
signature of what it instantiates (a method's ``__init__`` is its config schema, STYLE.md §3, and
its dataclass sections such as ``loss:`` or ``svdd:`` are checked field by field); values with a
range are checked against `RANGES`. A mistake fails with `ConfigError`, naming the key, the value
and what is allowed.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from pathlib import Path

from hydra.utils import get_method
from omegaconf import DictConfig, ListConfig, OmegaConf


class ConfigError(ValueError):
    """A config value or key that cannot work; the message names it and the fix."""


def _number(low: float | None = None, high: float | None = None, low_open: bool = False,
            high_open: bool = False, integer: bool = False) -> tuple[Callable, str]:
    kind = "an integer" if integer else "a number"
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high}")
    if low is not None and high is not None:
        allowed = f"{kind} in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    else:
        allowed = f"{kind} {' and '.join(parts)}".strip()

    def check(value) -> bool:
        if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
            return False
        return ((low is None or (value > low if low_open else value >= low))
                and (high is None or (value < high if high_open else value <= high)))

    return check, allowed


def _image_size(value) -> bool:
    return value is None or (isinstance(value, (list, tuple)) and len(value) == 2
                             and all(isinstance(v, int) and v > 0 for v in value))


# Key → (check, what is allowed). A key absent from a config is not checked.
RANGES: dict[str, tuple[Callable, str]] = {
    "model.optimizer.lr": _number(0, low_open=True),
    "model.clip.length": _number(1, integer=True),
    "model.clip.dilation": _number(1, integer=True),
    "model.svdd.nu": _number(0, 1, low_open=True),
    "model.kmeans.pretrain_epochs": _number(0, integer=True),
    "model.clusters": _number(0, integer=True),
    "data.image_size": (_image_size, "null or [H, W], two positive integers"),
    "data.batch_size": _number(1, integer=True),
    "data.eval_batch_size": _number(1, integer=True),
    "data.num_workers": (lambda v: v == "auto" or _number(0, integer=True)[0](v),
                         "auto or an integer >= 0"),
    "data.val_fraction": _number(0, 1, high_open=True),
    "data.test_window_step": _number(1, integer=True),
    "trainer.max_epochs": _number(-1, integer=True),
}


def check_config(cfg: DictConfig) -> None:
    """Every check that needs only the composed config (see the module docstring)."""
    for group in ("model", "data", "trainer"):
        section = cfg.get(group)
        if isinstance(section, DictConfig) and "_target_" in section:
            _check_keys(section, group)
    for key, (check, allowed) in RANGES.items():
        value = OmegaConf.select(cfg, key, default="<absent>")
        if isinstance(value, str) and value == "<absent>":
            continue
        value = OmegaConf.to_object(value) if isinstance(value, (DictConfig, ListConfig)) else value
        if not check(value):
            raise ConfigError(f"{key}={value!r}: must be {allowed}")
    _check_accelerator(cfg)


def check_image_size(model, datamodule) -> None:
    """The frames the data gives (``data.image_size``, or a synthetic set's ``data.size``) must
    divide by the network's ``size_multiple`` (its poolings), and the clip length by its
    ``length_multiple`` (3D poolings over time); a source size, unknown before the data is
    read, is not checked here. Runs right after the model is instantiated, before any trainer,
    callback or logger exists."""
    net = getattr(model, "net", None)
    length_multiple = getattr(net, "length_multiple", 1)
    length = getattr(getattr(model, "clip_spec", None), "length", None)
    if isinstance(length, int) and length % length_multiple:
        fit = max(length_multiple, round(length / length_multiple) * length_multiple)
        raise ConfigError(f"model.clip.length={length}: {type(model).__name__}'s network needs "
                          f"a clip length divisible by {length_multiple}, e.g. "
                          f"model.clip.length={fit}")
    multiple = getattr(net, "size_multiple", 1)
    if datamodule.image_size is not None:
        key, (height, width) = "data.image_size", datamodule.image_size
    elif isinstance(getattr(datamodule, "size", None), int):
        key, height, width = "data.size", datamodule.size, datamodule.size
    else:
        return
    if multiple == 1:
        return
    if height % multiple or width % multiple:
        fit = [max(multiple, round(v / multiple) * multiple) for v in (height, width)]
        example = f"[{fit[0]},{fit[1]}]" if key == "data.image_size" else fit[0]
        given = f"[{height}, {width}]" if key == "data.image_size" else height
        raise ConfigError(f"{key}={given}: {type(model).__name__}'s network needs frame sizes "
                          f"divisible by {multiple}, e.g. {key}={example}")


def _check_keys(section: DictConfig, key: str) -> None:
    """The keys of a ``_target_`` section against its target's signature, recursing into
    arguments typed as dataclasses and into nested ``_target_`` sections."""
    target = get_method(section["_target_"]) if "." in section["_target_"] else None
    if target is None:
        return
    parameters = _parameters(target)
    given = [k for k in section.keys() if not str(k).startswith("_")]
    if parameters is not None:
        unknown = [k for k in given if k not in parameters]
        if unknown:
            raise ConfigError(
                f"{key}.{unknown[0]} is not an option of {_name(target)}; its options are: "
                f"{', '.join(sorted(parameters))}")
    hints = _type_hints(target)
    for name in given:
        value = section.get(name)
        if not isinstance(value, DictConfig):
            continue
        if "_target_" in value:
            _check_keys(value, f"{key}.{name}")
            continue
        dataclass = _dataclass_in(hints.get(name))
        if dataclass is not None:
            fields = {f.name for f in dataclasses.fields(dataclass)}
            unknown = [k for k in value.keys() if k not in fields]
            if unknown:
                raise ConfigError(f"{key}.{name}.{unknown[0]} is not an option of "
                                  f"{dataclass.__name__}; its options are: "
                                  f"{', '.join(sorted(fields))}")


def _parameters(target) -> set[str] | None:
    """Keyword names ``target`` takes, following ``**kwargs`` up a class's bases; None when
    anything goes (a ``**kwargs`` that leads nowhere we can read)."""
    names: set[str] = set()
    for owner in (target.__mro__ if inspect.isclass(target) else [target]):
        init = owner.__init__ if inspect.isclass(target) else owner
        if inspect.isclass(target) and "__init__" not in owner.__dict__:
            continue
        if init is object.__init__:
            return None
        try:
            signature = inspect.signature(init)
        except (TypeError, ValueError):
            return None
        open_ended = False
        for parameter in signature.parameters.values():
            if parameter.kind is parameter.VAR_KEYWORD:
                open_ended = True
            elif parameter.name != "self" and parameter.kind is not parameter.VAR_POSITIONAL:
                names.add(parameter.name)
        if not open_ended:
            return names
        if not inspect.isclass(target):
            return None
    return None


def _type_hints(target) -> dict:
    try:
        return typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
    except Exception:  # unresolvable annotations: no dataclass sections to check
        return {}


def _dataclass_in(annotation):
    candidates = typing.get_args(annotation) or (annotation,)
    return next((c for c in candidates if dataclasses.is_dataclass(c)), None)


def _name(target) -> str:
    return f"{target.__module__}.{target.__qualname__}"


def _check_accelerator(cfg: DictConfig) -> None:
    """A GPU recipe on a machine without a GPU: name the CPU recipe or override to use."""
    accelerator = OmegaConf.select(cfg, "trainer.accelerator", default=None)
    if accelerator not in ("gpu", "cuda"):
        return
    import torch

    if torch.cuda.is_available():
        return
    experiment = OmegaConf.select(cfg, "experiment_name", default=None)
    conf = Path(__file__).resolve().parents[2] / "conf" / "experiment"
    if experiment and (conf / f"{experiment}_cpu.yaml").exists():
        fix = f"use experiment={experiment}_cpu (its reduced CPU recipe) or add trainer=cpu"
    else:
        fix = "add trainer=cpu"
    what = f"experiment={experiment}" if experiment else f"trainer.accelerator={accelerator}"
    raise ConfigError(f"{what} needs a GPU and this machine has none: {fix}")


def check_device(name: str) -> None:
    """``device=cuda`` (``vad.detect``) on a machine without a GPU: one line naming the fix,
    instead of Lightning's or torch's own exception text."""
    if str(name).split(":")[0] != "cuda":
        return
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(f"device={name} needs a GPU and this machine has none: use device=cpu "
                          "(or device=auto, which takes the GPU when there is one)")
