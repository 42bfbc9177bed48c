"""UCSD Ped1 and Ped2 (`data=ped1`, `data=ped2`): pedestrian walkways seen from a fixed camera.

Mahadevan, Li, Bhalodia and Vasconcelos, "Anomaly Detection in Crowded Scenes", CVPR 2010.
http://www.svcl.ucsd.edu/projects/anomaly/dataset.htm. No licence is stated; the authors ask
that users cite the paper. Anomalies are non-pedestrians (bikes, skaters, carts, wheelchairs)
and pedestrians walking across the walkway or on the grass. Grey frames at 10 fps.

| | train videos / frames | test videos / frames | anomalous test frames | size |
| --- | --- | --- | --- | --- |
| Ped1 | 34 / 6,800 | 36 / 7,200 | 4,045 | 238×158 |
| Ped2 | 16 / 2,550 | 12 / 2,010 | 1,648 | 360×240 |

Layouts read (``data.layout=auto`` tries ``ucsd`` then ``common``; the ``common``
layout and its ``frames``/``videos`` restrictions are generic, in `vad.data.layouts`)::

    UCSDped2/                      # ucsd: the original release (root may also be its parent)
      Train/Train001/001.tif ...
      Test/Test001/001.tif ...
      Test/Test001_gt/001.bmp ...  # pixel masks: not a video; in record.extras["pixel_masks"]
      Test/UCSDped2.m              # TestVideoFile{end+1}.gt_frame = [61:180];

    ped2/                          # common: frames or videos per split
      training/frames/01/000.jpg ...     or  training/videos/01.mp4 ...
      testing/frames/01/000.jpg ...      or  testing/videos/01.mp4 ...
      ped2.mat                     # gt: per video a 2xK [start; end] array, 1-based inclusive

The ``.m`` and ``.mat`` label files agree frame for frame (tested on the real files).
"""

from __future__ import annotations

from pathlib import Path

from vad.data.datamodule import DiskVideoDataModule
from vad.data.labels import describe_source
from vad.data.layouts import (
    BenchmarkCounts,
    DatasetInfo,
    DatasetRecords,
    Layout,
    candidates,
    common_labels,
    common_layouts,
    has_subdirs,
    labelled,
    resolve_labels,
    scan_videos,
    test_records,
    train_records,
)


# -- the ucsd layout: UCSD's own release ----------------------------------------------------------
def _find_ucsd(root: Path, info: DatasetInfo) -> Path | None:
    number = info.name[-1]
    for base in candidates(root, [f"UCSDped{number}",
                                  f"UCSD_Anomaly_Dataset.v1p2/UCSDped{number}"]):
        if has_subdirs(base / "Train", r"Train\d+") and has_subdirs(base / "Test", r"Test\d+"):
            return base
    return None


def _read_ucsd(info: DatasetInfo, base: Path, root: Path, labels) -> DatasetRecords:
    train = scan_videos(base / "Train", info.name, r"Train\d+", docs=info.docs)
    test = scan_videos(base / "Test", info.name, r"Test\d+", docs=info.docs)
    if labels is None:  # the .m file may be named differently in other copies
        default = base / "Test" / f"UCSDped{info.name[-1]}.m"
        found = sorted((base / "Test").glob("*.m"))
        if not default.exists() and len(found) == 1:
            labels = found[0]
    source = resolve_labels(info, "ucsd", base, root, labels)
    extras = []
    for video in test:  # TestNNN_gt pixel-mask folders are not videos; kept reachable
        masks = base / "Test" / f"{video.name}_gt"
        extras.append({"pixel_masks": masks} if masks.is_dir() else {})
    return DatasetRecords(info.name, base, "ucsd", describe_source(source), train_records(train),
                          test_records(test, labelled(info.name, test, source), extras))


UCSD = Layout("ucsd", "UCSDpedN/Train/TrainNNN/NNN.tif, UCSDpedN/Test/TestNNN/NNN.tif, "
                      "UCSDpedN/Test/UCSDpedN.m", _find_ucsd, _read_ucsd)
_COMMON = common_layouts()


def _ped_info(number: int) -> DatasetInfo:
    return DatasetInfo(
        f"ped{number}", f"UCSD Ped{number}", "ucsd-ped1-and-ped2",
        layouts=(UCSD, _COMMON["common"]), forced_layouts=(_COMMON["frames"], _COMMON["videos"]),
        labels={"ucsd": (f"Test/UCSDped{number}.m",), **common_labels(f"ped{number}.mat")})


PED1 = _ped_info(1)
PED2 = _ped_info(2)


class Ped1DataModule(DiskVideoDataModule):
    """UCSD Ped1 (`data=ped1`); see the module docstring for layouts and counts.

    Args:
        root: The dataset folder (``UCSDped1`` or its parent, or a common-layout folder).
        layout: ``auto``, ``ucsd``, ``common``, ``frames`` or ``videos``.
        labels: Label file (``.m`` or ``gt`` ``.mat``), absolute or relative to ``root``; None
            uses the layout's own (``Test/UCSDped1.m`` or ``ped1.mat``).
        **kwargs: `VideoDataModule` arguments.
    """

    dataset = PED1
    benchmark = BenchmarkCounts(videos={"train": 34, "test": 36},
                                frames={"train": 6_800, "test": 7_200},
                                video_frames={"train": (200,) * 34, "test": (200,) * 36})

    def __init__(self, root: str = "data/ped1", layout: str = "auto", labels: str | None = None,
                 **kwargs) -> None:
        super().__init__(root=root, layout=layout, labels=labels, **kwargs)


class Ped2DataModule(Ped1DataModule):
    """UCSD Ped2 (`data=ped2`); the same layouts and arguments as `Ped1DataModule`."""

    dataset = PED2
    benchmark = BenchmarkCounts(
        videos={"train": 16, "test": 12}, frames={"train": 2_550, "test": 2_010},
        video_frames={"train": (120, 150, 150, 180, 180, 150, 150, 120, 180, 180, 180, 180, 180,
                                150, 150, 150),
                      "test": (180, 180, 150, 180, 150, 180, 180, 180, 120, 150, 180, 180)})

    def __init__(self, root: str = "data/ped2", **kwargs) -> None:
        super().__init__(root=root, **kwargs)
