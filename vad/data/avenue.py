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

from vad.data.datamodule import DiskVideoDataModule
from vad.data.layouts import BenchmarkCounts


class AvenueDataModule(DiskVideoDataModule):
    """CUHK Avenue; see the module docstring for layouts, label sources and counts.

    Args:
        root: The dataset folder.
        layout: ``auto``, ``avenue``, ``common``, ``frames`` or ``videos``.
        labels: Label source, absolute or relative to ``root`` (see the module docstring).
        **kwargs: `VideoDataModule` arguments (``grayscale`` defaults to False here).
    """

    dataset = "avenue"
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
