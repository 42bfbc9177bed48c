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

from pathlib import Path

from vad.data.datamodule import DiskVideoDataModule
from vad.data.labels import LabelError, read_track_file, track_mask
from vad.data.layouts import (
    BenchmarkCounts,
    DatasetInfo,
    DatasetLayoutError,
    DatasetRecords,
    Layout,
    candidates,
    has_subdirs,
    scan_videos,
    test_records,
    train_records,
)


def _find_streetscene(root: Path, info: DatasetInfo) -> Path | None:
    for base in candidates(root, ["StreetScene"]):
        if has_subdirs(base / "Train", r"Train\d+") and has_subdirs(base / "Test", r"Test\d+"):
            return base
    return None


def _read_streetscene(info: DatasetInfo, base: Path, root: Path, labels) -> DatasetRecords:
    if labels is not None:
        raise DatasetLayoutError(f"{info.name}: Street Scene's labels are its track files "
                                 f"Test/TestNNN/TestNNN_gt.txt; data.labels must be null")
    train = scan_videos(base / "Train", info.name, r"Train\d+", docs=info.docs)
    test = scan_videos(base / "Test", info.name, r"Test\d+", docs=info.docs)
    label_arrays, extras = [], []
    for video in test:
        track_file = base / "Test" / video.name / f"{video.name}_gt.txt"
        if not track_file.is_file():
            raise DatasetLayoutError(
                f"{info.name}: test sequence {video.name} has no track file {track_file}; the "
                f"download is incomplete. See {info.docs}."
            )
        try:
            tracks = read_track_file(track_file)
            label_arrays.append(track_mask(tracks, video.num_frames, video.name, track_file))
        except LabelError as err:
            raise type(err)(f"{info.name}: {err}") from err
        extras.append({"tracks": tracks, "track_file": track_file})
    source = (f"Street Scene track files, a frame is anomalous if it holds a box "
              f"({(base / 'Test').resolve()})")
    return DatasetRecords(info.name, base, "streetscene", source, train_records(train),
                          test_records(test, label_arrays, extras))


ORIGINAL = Layout("streetscene", "StreetScene/Train/TrainNNN/NNNNN.jpg, "
                                 "StreetScene/Test/TestNNN/NNNNN.jpg, "
                                 "StreetScene/Test/TestNNN/TestNNN_gt.txt",
                  _find_streetscene, _read_streetscene)
STREETSCENE = DatasetInfo("streetscene", "Street Scene", "street-scene", layouts=(ORIGINAL,))


class StreetSceneDataModule(DiskVideoDataModule):
    """Street Scene; see the module docstring for the layout and label rule.

    Args:
        root: ``StreetScene`` or the folder holding it.
        layout: ``auto`` or ``streetscene``.
        **kwargs: `VideoDataModule` arguments (``grayscale`` defaults to False here).
    """

    dataset = STREETSCENE
    benchmark = BenchmarkCounts(videos={"train": 46, "test": 35})

    def __init__(self, root: str = "data/streetscene", layout: str = "auto", **kwargs) -> None:
        kwargs.setdefault("grayscale", False)  # an RGB dataset
        super().__init__(root=root, layout=layout, **kwargs)
