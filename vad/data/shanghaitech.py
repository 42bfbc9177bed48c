"""ShanghaiTech Campus (`data=shanghaitech`): 13 campus scenes, each from its own camera.

Liu, Luo, Lian and Gao, "Future Frame Prediction for Anomaly Detection -- A New Baseline",
CVPR 2018. https://svip-lab.github.io/dataset/campus_dataset.html. Licence: the terms on the
dataset page; cite the paper. Anomalies are bikes, skateboards, vehicles, chasing, fighting,
throwing. RGB frames, 856×480.

| | videos | frames | anomalous frames |
| --- | --- | --- | --- |
| train | 330 | 274,515 | (normal only) |
| test | 107 | 40,791 | 17,326 by ``test_frame_mask`` |

Papers quote 42,883 test frames; the released frame masks, and so the scored frames, cover
40,791. The test videos come from scenes 01-12.

Video names are ``<scene>_<number>``: ``scenes=[1]`` trains and tests on camera 01 alone (the
per-camera protocol of paper 003); ``null`` uses every scene. Test records carry
``extras["scene"]`` and, when present, ``extras["pixel_mask_file"]``.

Layout read (``common``; the release itself mixes videos for training and frames for testing)::

    shanghaitech/
      training/videos/01_001.avi ...        (or training/frames/01_001/000.jpg ...)
      testing/frames/01_0014/000.jpg ...    (or testing/videos/01_0014.avi ...)
      testing/test_frame_mask/01_0014.npy   # 0/1 per frame
      testing/test_pixel_mask/01_0014.npy   # pixel masks (kept reachable, not read)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from vad.data.datamodule import DiskVideoDataModule
from vad.data.labels import describe_source
from vad.data.layouts import (
    BenchmarkCounts,
    DatasetInfo,
    DatasetLayoutError,
    DatasetRecords,
    common_layouts,
    common_videos,
    labelled,
    resolve_labels,
    test_records,
    train_records,
)


def _scene(name: str) -> int | None:
    match = re.match(r"(\d+)_", name)
    return int(match.group(1)) if match else None


def _read_shanghaitech(info: DatasetInfo, base: Path, root: Path, labels, layout: str,
                       scenes: Sequence[int] | None = None) -> DatasetRecords:
    """The common layout, optionally restricted to ``scenes``, with per-video extras."""
    train, test = common_videos(info, base, layout)
    if scenes is not None:  # videos are named <scene>_<number>
        wanted = {int(s) for s in scenes}
        train = [v for v in train if _scene(v.name) in wanted]
        test = [v for v in test if _scene(v.name) in wanted]
        if not train or not test:
            raise DatasetLayoutError(
                f"{info.name}: no {'training' if not train else 'test'} video of scenes "
                f"{sorted(wanted)} under {base} (videos are named <scene>_<number>, e.g. 01_001)"
            )
    source = resolve_labels(info, layout, base, root, labels)
    extras = []
    for video in test:
        extra: dict = {}
        if _scene(video.name) is not None:
            extra["scene"] = _scene(video.name)
        pixel = base / "testing" / "test_pixel_mask" / f"{video.name}.npy"
        if pixel.is_file():
            extra["pixel_mask_file"] = pixel
        extras.append(extra)
    return DatasetRecords(info.name, base, layout, describe_source(source), train_records(train),
                          test_records(test, labelled(info.name, test, source), extras))


_COMMON = common_layouts(_read_shanghaitech)
SHANGHAITECH = DatasetInfo(
    "shanghaitech", "ShanghaiTech Campus", "shanghaitech-campus",
    layouts=(_COMMON["common"],), forced_layouts=(_COMMON["frames"], _COMMON["videos"]),
    labels={layout: ("testing/test_frame_mask", "test_frame_mask") for layout in _COMMON},
    options=("scenes",))

# Frames of the 107 test videos, 01_0014 … 12_0175 in name order (the test_frame_mask lengths).
_TEST_VIDEO_FRAMES = (
        265, 433, 337, 601, 505, 409, 457, 313, 409, 337, 337, 457, 577, 313, 529, 193, 289, 289,
        265, 241, 337, 289, 265, 217, 433, 409, 529, 313, 217, 241, 313, 193, 265, 317, 457, 337,
        361, 529, 409, 313, 385, 457, 481, 457, 433, 385, 241, 553, 937, 865, 505, 313, 361, 361,
        529, 337, 433, 481, 649, 649, 409, 337, 769, 433, 241, 217, 265, 265, 217, 265, 409, 385,
        481, 457, 313, 601, 241, 481, 313, 337, 457, 217, 241, 289, 337, 313, 337, 265, 265, 337,
        361, 433, 241, 433, 601, 505, 337, 601, 265, 313, 241, 289, 361, 385, 217, 337, 265,
)


class ShanghaiTechDataModule(DiskVideoDataModule):
    """ShanghaiTech Campus; see the module docstring for the layout and counts.

    Args:
        root: The dataset folder.
        layout: ``auto``, ``common``, ``frames`` or ``videos``.
        labels: Label folder or file, absolute or relative to ``root``; None uses
            ``testing/test_frame_mask``.
        scenes: Scene numbers to keep (e.g. ``[1]``); None keeps all.
        **kwargs: `VideoDataModule` arguments (``grayscale`` defaults to False here).
    """

    dataset = SHANGHAITECH
    benchmark = BenchmarkCounts(videos={"train": 330, "test": 107}, frames={"test": 40_791},
                                video_frames={"test": _TEST_VIDEO_FRAMES})

    def __init__(
        self,
        root: str = "data/shanghaitech",
        layout: str = "auto",
        labels: str | None = None,
        scenes: Sequence[int] | None = None,
        **kwargs,
    ) -> None:
        kwargs.setdefault("grayscale", False)  # an RGB dataset
        super().__init__(root=root, layout=layout, labels=labels, **kwargs)
        self.scenes = list(scenes) if scenes is not None else None

    @property
    def read_options(self) -> dict:
        return {"scenes": self.scenes}

    @property
    def label_source(self) -> str:
        scenes = "all scenes" if self.scenes is None else f"scenes {self.scenes}"
        return f"{self.found.label_source}; {scenes}"
