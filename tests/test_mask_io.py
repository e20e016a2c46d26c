"""Segmentation-mask export (annotator.mask_io): the CVAT "Segmentation mask 1.1" / Pascal VOC layout, read back
with Pillow as another tool would read it."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from annotator.document import Project
from annotator.mask_io import export_segmentation_masks, voc_palette

H, W = 40, 60


@pytest.fixture
def project(tmp_path: Path):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a.png", "b.jpg", "c.png"):
        cv2.imwrite(str(images / name), np.full((H, W, 3), 90, np.uint8))
    p = Project.new(images, tmp_path / "project")
    yield p
    p.close()


def _box(y0, y1, x0, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_class_and_instance_pngs_give_every_segment_back(project: Project, tmp_path: Path) -> None:
    first = project.categories[0].id
    sky = project.add_category("sky", (10, 120, 250), isthing=False)
    dog = project.add_category("dog", (200, 30, 30))
    a1 = project.add_segment(0, _box(0, 10, 0, 60), sky)
    a2 = project.add_segment(0, _box(20, 35, 5, 25), dog)
    a3 = project.add_segment(0, _box(20, 35, 30, 50), dog)
    b1 = project.add_segment(1, _box(5, 15, 5, 15), first)
    out = tmp_path / "masks"
    labelmap = export_segmentation_masks(project, out)
    assert Path(labelmap) == out / "labelmap.txt"
    order = sorted(project.categories, key=lambda c: c.id)
    lines = (out / "labelmap.txt").read_text().splitlines()
    assert lines[1] == "background:0,0,0::"
    assert lines[2:] == [f"{c.name}:{c.color[0]},{c.color[1]},{c.color[2]}::" for c in order]
    assert (out / "ImageSets" / "Segmentation" / "default.txt").read_text().split() == ["a", "b", "c"]

    index = {c.id: k for k, c in enumerate(order, 1)}
    for i, stem in enumerate(["a", "b", "c"]):
        cls = Image.open(out / "SegmentationClass" / f"{stem}.png")
        obj = Image.open(out / "SegmentationObject" / f"{stem}.png")
        assert cls.mode == "P" and obj.mode == "P" and cls.size == (W, H)
        c, o = np.array(cls), np.array(obj)
        labels = project.images[i].labels
        ids = sorted(project.images[i].segments)
        want_cls = np.zeros((H, W), np.uint8)
        want_obj = np.zeros((H, W), np.uint8)
        for n, sid in enumerate(ids, 1):
            want_cls[labels == sid] = index[project.images[i].segments[sid].category_id]
            want_obj[labels == sid] = n
        assert np.array_equal(c, want_cls) and np.array_equal(o, want_obj)
        # Read as colours (CVAT's way): each class pixel has its category's colour, background black.
        rgb = np.array(cls.convert("RGB"))
        for sid in ids:
            colour = project.category(project.images[i].segments[sid].category_id).color
            assert (rgb[labels == sid] == colour).all()
        assert (rgb[labels == 0] == 0).all()
        assert (np.array(obj.convert("RGB"))[o == 1] == voc_palette()[1]).all() if ids else True
    assert {a1, a2, a3} and b1  # used above through the label maps
    assert np.array(Image.open(out / "SegmentationClass" / "c.png")).max() == 0  # no segments: all background


def test_more_than_255_segments_in_an_image_is_refused_by_name(project: Project, tmp_path: Path) -> None:
    cat = project.categories[0].id
    for k in range(256):
        project.add_segment(2, _box(k // 60 * 5, k // 60 * 5 + 1, k % 60, k % 60 + 1), cat)
    with pytest.raises(ValueError, match="c.png has 256 segments"):
        export_segmentation_masks(project, tmp_path / "out")
    assert not any((tmp_path / "out").rglob("*.png"))  # nothing half-written
