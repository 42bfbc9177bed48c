"""Street Scene (`data=streetscene`): a two-lane street with bike lanes and sidewalks.

Ramachandra and Jones, "Street Scene: A new dataset and evaluation protocol for video anomaly
detection", WACV 2020. Downloads: ``https://www.merl.com/pub/streetscene/Train.tgz`` and
``Test.tgz``. Licence: the terms on MERL's Street Scene page; cite the paper. Anomalies are
jaywalking, loitering, U-turns, illegal parking, bikes on the sidewalk and similar. RGB frames,
1280×720, 15 fps.

| | sequences | frames |
| --- | --- | --- |
| train | 46 | 56,847 |
| test | 35 | ~146,410 (papers quote 146,410 and 146,445) |

The paper reports 205 anomalous events; anomalous-frame counts follow from the track files.

Labels: each test sequence has a track file ``TestNNN_gt.txt``, one line per annotated box::

    <frame file> <track id> <center x> <center y> <width> <height>

(the frame file's name starts with its 1-based number; track ids are 0-based). A frame is
anomalous if it holds a box of any track, the rule of the authors' own frame-label script. The
tracks (`vad.data.labels.TRACK_DTYPE` rows, frames 0-based) stay in ``extras["tracks"]`` for the
region- and track-based criteria (RBDC/TBDC) the dataset introduced.

Layout read (``streetscene``)::

    StreetScene/                     # root may be this folder or its parent
      Train/Train001/00001.jpg ...
      Test/Test001/00001.jpg ...
      Test/Test001/Test001_gt.txt
"""

from __future__ import annotations

from vad.data.datamodule import DiskVideoDataModule
from vad.data.layouts import BenchmarkCounts


class StreetSceneDataModule(DiskVideoDataModule):
    """Street Scene; see the module docstring for the layout and label rule.

    Args:
        root: ``StreetScene`` or the folder holding it.
        layout: ``auto`` or ``streetscene``.
        **kwargs: `VideoDataModule` arguments (``grayscale`` defaults to False here).
    """

    dataset = "streetscene"
    benchmark = BenchmarkCounts(videos={"train": 46, "test": 35})

    def __init__(self, root: str = "data/streetscene", layout: str = "auto", **kwargs) -> None:
        kwargs.setdefault("grayscale", False)  # an RGB dataset
        super().__init__(root=root, layout=layout, **kwargs)
