"""Long exports report progress, can be cancelled, and a cancelled or failed export leaves the output folder as it
was (an earlier export in it included): annotator.staging with every exporter."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest

from annotator.coco_io import export_coco_instances, export_coco_panoptic
from annotator.document import Project
from annotator.mask_io import export_segmentation_masks
from annotator.polygon_io import export_labelme, export_yolo_seg
from annotator.staging import Cancelled, StagedOutput

H, W = 60, 80


@pytest.fixture
def project(tmp_path: Path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(3)
    for k in range(4):
        cv2.imwrite(str(images / f"im{k}.png"), rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    p = Project.new(images, tmp_path / "proj")
    for k in range(4):
        box = np.zeros((H, W), bool)
        box[10 + k:30, 5:50 - k] = True
        p.add_segment(k, box, 1)
    yield p
    p.close()


EXPORTERS: dict[str, Callable] = {
    "panoptic": lambda project, out, progress: export_coco_panoptic(project, out, progress=progress),
    "instances": lambda project, out, progress: export_coco_instances(project, out / "instances.json",
                                                                      progress=progress),
    "labelme": lambda project, out, progress: export_labelme(project, out, progress=progress),
    "yolo": lambda project, out, progress: export_yolo_seg(project, out, progress=progress),
    "masks": lambda project, out, progress: export_segmentation_masks(project, out, progress=progress),
}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {os.fspath(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("kind", sorted(EXPORTERS))
def test_progress_reaches_the_end_and_cancel_leaves_an_earlier_export_untouched(project: Project, tmp_path: Path,
                                                                                 kind: str) -> None:
    export = EXPORTERS[kind]
    out = tmp_path / "out"
    calls: list[tuple[int, int]] = []
    export(project, out, lambda done, total: calls.append((done, total)) or True)
    assert calls[0] == (0, 4) and calls[-1] == (4, 4) and all(t == 4 for _, t in calls)
    before = snapshot(out)
    assert before and not any(name.startswith(".export-") for name in os.listdir(out))

    # The project changes, and the user cancels the next export half-way: the first export is still all there.
    box = np.zeros((H, W), bool)
    box[40:55, 60:75] = True
    project.add_segment(0, box, 1)
    with pytest.raises(Cancelled):
        export(project, out, lambda done, total: done < 2)
    assert snapshot(out) == before

    # A failure half-way (a full disk, say) leaves it the same way.
    def fail(done: int, total: int) -> bool:
        if done == 3:
            raise OSError(28, "No space left on device")
        return True

    with pytest.raises(OSError):
        export(project, out, fail)
    assert snapshot(out) == before

    # Finished, the new export replaces the old one.
    export(project, out, None)
    assert snapshot(out) != before and not any(name.startswith(".export-") for name in os.listdir(out))


def test_staged_files_land_in_the_order_they_were_asked_for(tmp_path: Path) -> None:
    with StagedOutput(tmp_path) as staged:
        staged.path("sub/a.txt").write_text("a")
        staged.path("index.json").write_text("{}")
        staged.path("never_written.txt")
        assert not (tmp_path / "sub" / "a.txt").exists()  # nothing visible before the end
    assert (tmp_path / "sub" / "a.txt").read_text() == "a" and (tmp_path / "index.json").read_text() == "{}"
    assert sorted(os.listdir(tmp_path)) == ["index.json", "sub"]


@pytest.mark.parametrize("stop_at", [1, 2, 5, 7])  # 4 images: 1-4 while checking, 5-8 while writing
def test_a_cancelled_coco_import_leaves_no_project_and_a_later_import_works(project: Project, tmp_path: Path,
                                                                           stop_at: int) -> None:
    from annotator.coco_io import import_coco_panoptic

    json_path = export_coco_panoptic(project, tmp_path / "exp")
    images = tmp_path / "images"
    calls: list[tuple[int, int]] = []
    with pytest.raises(Cancelled):
        import_coco_panoptic(json_path, images, tmp_path / "new", progress=lambda d, t: calls.append((d, t)) or d < stop_at)
    assert not (tmp_path / "new").exists() and calls[-1] == (stop_at, 8)
    existing = tmp_path / "chosen"  # a folder the user picked: it stays, empty as it was
    existing.mkdir()
    with pytest.raises(Cancelled):
        import_coco_panoptic(json_path, images, existing, progress=lambda d, t: d < stop_at)
    assert list(existing.iterdir()) == []
    re = import_coco_panoptic(json_path, images, existing)  # not locked, not half-made
    try:
        assert [np.array_equal(a.labels, b.labels) for a, b in zip(project.images, re.images)] == [True] * 4
    finally:
        re.close()


def test_a_cancelled_labelme_import_writes_nothing(project: Project, tmp_path: Path) -> None:
    from annotator.polygon_io import import_labelme

    export_labelme(project, tmp_path / "lm")
    with pytest.raises(Cancelled):
        import_labelme(tmp_path / "lm", tmp_path / "new", progress=lambda d, t: d < 3)
    assert not (tmp_path / "new").exists()
    calls: list[tuple[int, int]] = []
    re = import_labelme(tmp_path / "lm", tmp_path / "new", progress=lambda d, t: calls.append((d, t)) or True)
    try:
        assert calls[0] == (0, 4) and calls[-1] == (4, 4)
        assert [np.array_equal(a.labels, b.labels) for a, b in zip(project.images, re.images)] == [True] * 4
        assert [b.labelled_fraction() for b in re.images] == [a.labelled_fraction() for a in project.images]
    finally:
        re.close()


def test_a_labelme_import_does_not_hold_every_label_map_in_memory(tmp_path: Path) -> None:
    """Each file's map is kept as PNG bytes until the project is written: importing 8 files of 2000x1500 peaks
    well below 8 int32 maps (96 MB); before, it held all of them."""
    import json
    import tracemalloc

    from annotator.polygon_io import import_labelme

    h, w = 1500, 2000
    folder = tmp_path / "lm"
    folder.mkdir()
    cv2.imwrite(str(folder / "img.png"), np.zeros((h, w, 3), np.uint8))
    for k in range(8):
        shapes = [{"label": "thing", "points": [[100 + k, 100], [1800, 200], [900, 1400]], "shape_type": "polygon",
                   "group_id": None, "flags": {}, "description": ""}]
        (folder / f"f{k}.json").write_text(json.dumps({"version": "5.5.0", "shapes": shapes, "imagePath": "img.png",
                                                      "imageData": None, "imageHeight": h, "imageWidth": w}))
    tracemalloc.start()
    try:
        re = import_labelme(folder, tmp_path / "proj")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    re.close()
    one_map = h * w * 4
    assert len(re.images) == 8 and peak < 4 * one_map, peak / one_map
