"""Several datasets as one (`data=combined`): train one model on their pooled training videos.

Paper 004 (§V.A) trains one model on the combined grey training sets of UCSD Ped1 and Ped2,
Avenue, ShanghaiTech and Street Scene at 128×128, and tests it on each dataset separately.
Here each listed dataset keeps its own config (``data.datasets.<name>``: root, layout, labels,
scenes, ...) and only lends its *records*: the combined module concatenates them, renaming every
video ``<dataset>/<name>`` (``ped2/01``), and runs them through one shared pipeline with its own
decode settings (``image_size``, ``grayscale``), cache and loaders, so frames of every dataset
come out alike. The sub-datasets' own pipeline settings are not used.

``data.train`` and ``data.test`` name the datasets whose training and test splits are used
(default: all of ``data.datasets``). Per-dataset metrics, as the paper reports them, come from
re-testing the checkpoint on one test split at a time::

    python -m vad.train data=combined data.test=[ped2]
    python -m vad.evaluate ckpt_path=<run>/checkpoints/last.ckpt data=combined data.test=[avenue]

(`vad.evaluate` takes the run's data config, with the ``data.*`` keys given on its command line on
top.) Another benchmark joins with ``+data@data.datasets.<name>=<name>``, e.g.
``+data@data.datasets.folder=folder data.datasets.folder.train=cam.mp4 ...``.

Ambiguity: the paper also adds "the grayscale versions of the testing folders" of Avenue,
ShanghaiTech and Street Scene to its grey training set (§V.A); that would train on test
anomalies, so it is not done here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from vad.data.datamodule import VideoDataModule
from vad.data.records import VideoRecord


class CombinedDataModule(VideoDataModule):
    """The records of several dataset modules under one pipeline; see the module docstring.

    Args:
        datasets: Name → dataset module (instantiated from ``data.datasets.<name>``); only their
            `load_records` and `label_source` are used.
        train: Names whose training videos are used; None: all of ``datasets``.
        test: Names whose test videos are used; None: all of ``datasets``.
        **kwargs: `VideoDataModule` arguments (decode size and colour, batches, cache).
    """

    def __init__(
        self,
        datasets: Mapping[str, VideoDataModule],
        train: Sequence[str] | None = None,
        test: Sequence[str] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.members = dict(datasets)
        self.splits = {"train": list(train) if train is not None else list(self.members),
                       "test": list(test) if test is not None else list(self.members)}
        for split, names in self.splits.items():
            unknown = [n for n in names if n not in self.members]
            if unknown or not names:
                raise ValueError(
                    f"data.{split}={names}: each entry must name one of data.datasets "
                    f"{list(self.members)} (add another with +data@data.datasets.<name>=<name>)")

    def load_records(self, split: str) -> list[VideoRecord]:
        return [replace(record, name=f"{name}/{record.name}")
                for name in self.splits[split]
                for record in self.members[name].records(split)]

    @property
    def label_source(self) -> str:
        return "; ".join(f"{name}: {self.members[name].label_source}"
                         for name in self.splits["test"])
