"""Headless batch mode: valid COCO panoptic output, resumable, corrupt images skipped, GUI can import it."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from annotator.batch import run_auto
from annotator.coco_io import import_coco_panoptic, validate_coco_panoptic
from annotator.document import read_id_png

H, W = 24, 32


class FakeSegmenter:
    """Labels each of the image's distinct colours (quantised) as one segment; counts calls."""

    def __init__(self):
        self.calls = []

    def segment_image(self, image, roi=None, progress=None):
        self.calls.append(image.shape)
        q = (image[..., 0] // 128).astype(np.int32) + 2 * (image[..., 1] // 128) + 4 * (image[..., 2] // 128)
        labels = q * 10 + 5  # sparse ids on purpose: the batch renumbers them
        labels[image.sum(axis=2) == 0] = 0  # black stays unassigned
        return labels


def _make_images(folder: Path, n=3):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = np.zeros((H, W, 3), np.uint8)
        img[:, : W // 2] = (255, 0, 0)
        img[: H // 2, W // 2:] = (0, 255, 0)
        img[H // 2 + i:, W // 2:] = (0, 0, 255)  # bottom-right: black band of i rows, then blue
        cv2.imwrite(str(folder / f"img{i}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return folder


def test_batch_output_valid_and_matches_segmenter(tmp_path):
    imgs = _make_images(tmp_path / "imgs")
    seg = FakeSegmenter()
    j = run_auto(imgs, tmp_path / "out", segmenter=seg, progress=False)
    assert Path(j) == tmp_path / "out" / "panoptic.json"
    assert validate_coco_panoptic(j) == []
    data = json.loads(Path(j).read_text())
    assert data["categories"] == [{"id": 1, "name": "segment", "supercategory": "segment", "isthing": 1,
                                   "color": data["categories"][0]["color"]}]
    assert [im["file_name"] for im in data["images"]] == ["img0.png", "img1.png", "img2.png"]
    assert data["skipped"] == []
    for k, ann in enumerate(data["annotations"]):
        png = read_id_png(Path(j).parent / "panoptic" / ann["file_name"])
        assert len(ann["segments_info"]) == 3
        assert (png == 0).sum() == k * (W - W // 2)  # the black rows stay unlabelled
        # same partition as the fake segmenter's output
        img = cv2.cvtColor(cv2.imread(str(imgs / f"img{k}.png")), cv2.COLOR_BGR2RGB)
        ref = seg.segment_image(img)
        for sid in np.unique(png[png > 0]):
            assert len(np.unique(ref[png == sid])) == 1
        for rid in np.unique(ref[ref > 0]):
            assert len(np.unique(png[ref == rid])) == 1


def test_batch_resumes_and_skips_corrupt_image(tmp_path, capsys):
    imgs = _make_images(tmp_path / "imgs")
    (imgs / "corrupt.jpg").write_bytes(b"\xff\xd8 this is no jpeg")
    seg = FakeSegmenter()
    out = tmp_path / "out"
    j = run_auto(imgs, out, segmenter=seg, progress=False)
    assert len(seg.calls) == 3
    err = capsys.readouterr().err
    assert "corrupt.jpg" in err
    data = json.loads(Path(j).read_text())
    assert [s["file_name"] for s in data["skipped"]] == ["corrupt.jpg"]
    assert len(data["images"]) == 3
    assert validate_coco_panoptic(j) == []

    # a run interrupted after img0: only the rest is computed again
    for f in (out / "work").iterdir():
        if not f.name.startswith("img0"):
            f.unlink()
    seg2 = FakeSegmenter()
    run_auto(imgs, out, segmenter=seg2, progress=False)
    assert len(seg2.calls) == 2
    # everything done: nothing is computed, the output is the same
    before = Path(j).read_bytes()
    seg3 = FakeSegmenter()
    run_auto(imgs, out, segmenter=seg3, progress=False)
    assert seg3.calls == [] and Path(j).read_bytes() == before


def test_batch_redoes_a_corrupt_work_file(tmp_path):
    imgs = _make_images(tmp_path / "imgs", n=2)
    out = tmp_path / "out"
    run_auto(imgs, out, segmenter=FakeSegmenter(), progress=False)
    (out / "work" / "img1.png.png").write_bytes(b"half written")
    seg = FakeSegmenter()
    j = run_auto(imgs, out, segmenter=seg, progress=False)
    assert len(seg.calls) == 1 and validate_coco_panoptic(j) == []


def test_batch_output_opens_as_project(tmp_path):
    imgs = _make_images(tmp_path / "imgs", n=2)
    j = run_auto(imgs, tmp_path / "out", segmenter=FakeSegmenter(), progress=False)
    p = import_coco_panoptic(j)
    assert p.project_dir == (tmp_path / "out" / "project").resolve()
    assert [Path(e.path).name for e in p.images] == ["img0.png", "img1.png"]
    assert p.images[0].read_image().shape == (H, W, 3)
    assert p.images[0].labelled_fraction() == 1.0 and len(p.images[0].segments) == 3
    # correcting it works like any project
    sid = next(iter(p.images[1].segments))
    p.delete_segment(1, sid)
    assert p.images[1].labelled_fraction() < 1.0


def test_batch_with_progress_bar(tmp_path, capsys):
    imgs = _make_images(tmp_path / "imgs", n=1)
    run_auto(imgs, tmp_path / "out", segmenter=FakeSegmenter(), progress=True)
    assert "auto-segment" in capsys.readouterr().err


def test_batch_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        run_auto(tmp_path / "nope", tmp_path / "out", segmenter=FakeSegmenter(), progress=False)


def test_batch_with_random_init_model(tmp_path):
    model = pytest.importorskip("model")
    if not hasattr(model, "Segmenter"):
        pytest.skip("model.Segmenter not available yet")
    imgs = _make_images(tmp_path / "imgs", n=1)
    seg = model.Segmenter.random_init(seed=0)
    j = run_auto(imgs, tmp_path / "out", segmenter=seg, progress=False)
    assert validate_coco_panoptic(j) == []
    assert len(json.loads(Path(j).read_text())["images"]) == 1
