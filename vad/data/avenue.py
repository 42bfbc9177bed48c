"""CUHK Avenue (`data=avenue`): a campus avenue, people walking past a fixed camera.

Lu, Shi and Jia, "Abnormal Event Detection at 150 FPS in MATLAB", ICCV 2013.
http://www.cse.cuhk.edu.hk/leojia/projects/detectabnormal/dataset.html. Licence: the terms on
the dataset page (its label viewer says "for non-commercial use only"); cite the paper.
Anomalies are running, throwing objects, loitering, walking in the wrong direction. RGB frames,
640×360, 25 fps.

| | videos | frames | anomalous frames |
| --- | --- | --- | --- |
| train | 16 | 15,328 | (normal only) |
| test | 21 | 15,324 | 3,712 by ``volLabel`` any-pixel; 3,867 by ``frame_labels_avenue.npy`` |

The two label sources disagree on 441 frames, so the source is a config value
(``data.labels``) and is recorded with every result (`label_source`):

* ``ground_truth_demo/testing_label_mask`` (default): the authors' ``N_label.mat`` files, a 1×n
  cell ``volLabel`` of 360×640 pixel masks per test video; a frame is anomalous if any pixel is
  set. Each record keeps its mask file in ``extras["pixel_mask_file"]``.
* ``avenue.mat``: the common layout's ``gt`` ranges (2×K [start; end], 1-based inclusive).
* ``frame_labels_avenue.npy``: 0/1 per frame, all 21 test videos concatenated in order.

Layouts read (``data.layout=auto`` tries ``avenue`` then ``common``)::

    avenue/                                  # avenue: the original release
      training_videos/01.avi ... 16.avi
      testing_videos/01.avi ... 21.avi
      ground_truth_demo/testing_label_mask/1_label.mat ... 21_label.mat

    avenue/                                  # common
      training/frames/01/0000.jpg ...   or  training/videos/01.avi ...
      testing/frames/01/0000.jpg ...    or  testing/videos/01.avi ...
      avenue.mat
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
    labelled,
    resolve_labels,
    scan_videos,
    test_records,
    train_records,
)


# -- the avenue layout: CUHK's own release --------------------------------------------------------
def _find_avenue(root: Path, info: DatasetInfo) -> Path | None:
    for base in candidates(root, ["Avenue Dataset", "Avenue_Dataset", "avenue", "Avenue"]):
        if (base / "training_videos").is_dir() and (base / "testing_videos").is_dir():
            return base
    return None


def _read_avenue(info: DatasetInfo, base: Path, root: Path, labels) -> DatasetRecords:
    train = scan_videos(base / "training_videos", info.name, docs=info.docs)
    test = scan_videos(base / "testing_videos", info.name, docs=info.docs)
    source = resolve_labels(info, "avenue", base, root, labels)
    extras = []
    for video in test:
        extra = {}
        if source.is_dir() and video.name.isdigit():  # volLabel: the pixel masks themselves
            mask = source / f"{int(video.name)}_label.mat"
            if mask.is_file():
                extra["pixel_mask_file"] = mask
        extras.append(extra)
    return DatasetRecords(info.name, base, "avenue", describe_source(source),
                          train_records(train),
                          test_records(test, labelled(info.name, test, source), extras))


ORIGINAL = Layout("avenue", "training_videos/NN.avi, testing_videos/NN.avi, "
                            "ground_truth_demo/testing_label_mask/N_label.mat",
                  _find_avenue, _read_avenue)
_COMMON = common_layouts()
AVENUE = DatasetInfo(
    "avenue", "CUHK Avenue", "cuhk-avenue",
    layouts=(ORIGINAL, _COMMON["common"]), forced_layouts=(_COMMON["frames"], _COMMON["videos"]),
    labels={"avenue": ("ground_truth_demo/testing_label_mask",), **common_labels("avenue.mat")})


class AvenueDataModule(DiskVideoDataModule):
    """CUHK Avenue; see the module docstring for layouts, label sources and counts.

    Args:
        root: The dataset folder.
        layout: ``auto``, ``avenue``, ``common``, ``frames`` or ``videos``.
        labels: Label source, absolute or relative to ``root`` (see the module docstring).
        **kwargs: `VideoDataModule` arguments (``grayscale`` defaults to False here).
    """

    dataset = AVENUE
    benchmark = BenchmarkCounts(  # test videos: the lengths of the volLabel label files
        videos={"train": 16, "test": 21}, frames={"train": 15_328, "test": 15_324},
        video_frames={"test": (1439, 1211, 923, 947, 1007, 1283, 605, 36, 1175, 841, 472, 1271,
                               549, 507, 1001, 740, 426, 294, 248, 273, 76)})

    def __init__(
        self,
        root: str = "data/avenue",
        layout: str = "auto",
        labels: str | None = "ground_truth_demo/testing_label_mask",
        **kwargs,
    ) -> None:
        kwargs.setdefault("grayscale", False)  # an RGB dataset
        super().__init__(root=root, layout=layout, labels=labels, **kwargs)
