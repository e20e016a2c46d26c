"""COCO panoptic reader: real COCO sample files (when present) and small fixtures written here."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from train.coco_panoptic import CocoPanopticReader, decode_panoptic_png
from train.sample import DataError

SAMPLE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "coco_panoptic_sample"
SAMPLE = SAMPLE.resolve()


def write_ids_png(path: Path, ids: np.ndarray) -> None:
    """Encode an id map the COCO way (id = R + 256 G + 256^2 B); OpenCV writes BGR."""
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256], -1).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), rgb[:, :, ::-1].copy())


def make_dataset(root: Path, json_name: str = "panoptic.json", png_folder: str = "panoptic",
                 image_folder: str = "images", extra: dict | None = None) -> dict:
    """A 2-image panoptic data set: things, a stuff region, a crowd region and void pixels. Returns the truth."""
    h, w = 24, 32
    big = 70000  # uses all three PNG channels, so a wrong channel order shows
    ids0 = np.zeros((h, w), np.int64)
    ids0[:, :16] = 5            # stuff
    ids0[2:10, 18:30] = big     # thing
    ids0[12:20, 20:28] = 300    # crowd
    # rows 20.. of the right half stay 0 = void
    ids1 = np.full((h, w), 7, np.int64)
    ids1[5:15, 5:15] = 9
    img0 = np.zeros((h, w, 3), np.uint8)
    img0[:, :, 0] = 255  # pure red in RGB
    img1 = np.full((h, w, 3), 90, np.uint8)
    for name, ids, img in (("a", ids0, img0), ("b", ids1, img1)):
        write_ids_png(root / png_folder / f"{name}.png", ids)
        (root / image_folder).mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(root / image_folder / f"{name}.png"), img[:, :, ::-1].copy())
    data = {
        "images": [{"id": 1, "file_name": "a.png", "height": h, "width": w},
                   {"id": 2, "file_name": "b.png", "height": h, "width": w}],
        "annotations": [
            {"image_id": 1, "file_name": "a.png", "segments_info": [
                {"id": 5, "category_id": 100, "iscrowd": 0},
                {"id": big, "category_id": 1, "iscrowd": 0},
                {"id": 300, "category_id": 1, "iscrowd": 1}]},
            {"image_id": 2, "file_name": "b.png", "segments_info": [
                {"id": 7, "category_id": 100, "iscrowd": 0},
                {"id": 9, "category_id": 1, "iscrowd": 0}]},
        ],
        "categories": [{"id": 1, "name": "person", "isthing": 1}, {"id": 100, "name": "grass", "isthing": 0}],
    }
    data.update(extra or {})
    (root / json_name).write_text(json.dumps(data))
    return {"ids": [ids0, ids1], "images": [img0, img1], "big": big, "data": data}


def test_fixture_segments_crowd_void_and_rgb(tmp_path: Path) -> None:
    truth = make_dataset(tmp_path)
    r = CocoPanopticReader(tmp_path / "panoptic.json")
    assert len(r) == 2 and r.names == ["a", "b"]
    s = r[0]
    ids = truth["ids"][0]
    np.testing.assert_array_equal(s.image, truth["images"][0])  # RGB, not BGR
    assert len(s.segments) == 2
    np.testing.assert_array_equal(s.segments[0], ids == 5)
    np.testing.assert_array_equal(s.segments[1], ids == truth["big"])
    assert s.category_ids == [100, 1]
    # Crowd and void are ignored and belong to no segment.
    np.testing.assert_array_equal(s.ignore, (ids == 300) | (ids == 0))
    assert not any((m & s.ignore).any() for m in s.segments)
    s1 = r[1]
    assert len(s1.segments) == 2 and not s1.ignore.any()
    assert sum(m.sum() for m in s1.segments) == ids.size
    assert r.is_thing(1) and not r.is_thing(100)


def test_official_layout_json_stem_folder(tmp_path: Path) -> None:
    make_dataset(tmp_path, json_name="panoptic_val2017.json", png_folder="panoptic_val2017", image_folder="val2017")
    r = CocoPanopticReader(tmp_path / "panoptic_val2017.json", image_dir=tmp_path / "val2017")
    assert r.png_dir == tmp_path / "panoptic_val2017"
    assert len(r[1].segments) == 2


def test_image_dir_key_in_json(tmp_path: Path) -> None:
    make_dataset(tmp_path, image_folder="pics", extra={"image_dir": "pics"})
    r = CocoPanopticReader(tmp_path / "panoptic.json")
    assert r.image_dir == tmp_path / "pics"
    assert r[0].image.shape == (24, 32, 3)


def test_malformed_json_names_file(tmp_path: Path) -> None:
    p = tmp_path / "broken.json"
    p.write_text('{"images": [1, 2')
    with pytest.raises(DataError, match="broken.json"):
        CocoPanopticReader(p)


@pytest.mark.parametrize("key", ["annotations", "images"])
def test_missing_top_level_key(tmp_path: Path, key: str) -> None:
    make_dataset(tmp_path)
    p = tmp_path / "panoptic.json"
    data = json.loads(p.read_text())
    del data[key]
    p.write_text(json.dumps(data))
    with pytest.raises(DataError, match=key):
        CocoPanopticReader(p)


def test_missing_segments_info_key(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    p = tmp_path / "panoptic.json"
    data = json.loads(p.read_text())
    del data["annotations"][1]["segments_info"]
    p.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"annotations\[1\].*segments_info"):
        CocoPanopticReader(p)


def test_png_ids_missing_from_json_are_named(tmp_path: Path) -> None:
    truth = make_dataset(tmp_path)
    ids = truth["ids"][1].copy()
    ids[0, 0] = 4242
    ids[1, 1] = 77
    write_ids_png(tmp_path / "panoptic" / "b.png", ids)
    r = CocoPanopticReader(tmp_path / "panoptic.json")
    r[0]  # the other image is still readable
    with pytest.raises(DataError) as e:
        r[1]
    assert "b.png" in str(e.value) and "4242" in str(e.value) and "77" in str(e.value)


def test_missing_png_and_image(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    (tmp_path / "panoptic" / "a.png").unlink()
    (tmp_path / "images" / "b.png").unlink()
    r = CocoPanopticReader(tmp_path / "panoptic.json")
    with pytest.raises(DataError, match="a.png"):
        r[0]
    with pytest.raises(DataError, match="b.png"):
        r[1]


def test_png_size_differs_from_image(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    write_ids_png(tmp_path / "panoptic" / "b.png", np.full((10, 10), 7, np.int64))
    r = CocoPanopticReader(tmp_path / "panoptic.json")
    with pytest.raises(DataError, match="b.png.*size"):
        r[1]


def test_no_png_folder(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(DataError, match="x.json"):
        CocoPanopticReader(tmp_path / "x.json")


@pytest.mark.skipif(not (SAMPLE / "panoptic.json").exists(), reason="shared COCO panoptic sample not present")
def test_real_coco_sample_matches_segments_info() -> None:
    data = json.loads((SAMPLE / "panoptic.json").read_text())
    r = CocoPanopticReader(SAMPLE / "panoptic.json")
    assert len(r) == len(data["annotations"]) == 2
    n_crowd = 0
    for i, ann in enumerate(data["annotations"]):
        s = r[i]
        info = next(im for im in data["images"] if im["id"] == ann["image_id"])
        assert s.image.shape == (info["height"], info["width"], 3) and s.image.dtype == np.uint8
        # RGB order: the reader's image is OpenCV's BGR reversed.
        bgr = cv2.imread(str(SAMPLE / "images" / info["file_name"]))
        np.testing.assert_array_equal(s.image, bgr[:, :, ::-1])
        things = [x for x in ann["segments_info"] if not x["iscrowd"]]
        crowd = [x for x in ann["segments_info"] if x["iscrowd"]]
        n_crowd += len(crowd)
        # Each segment's pixel count is COCO's recorded area, in segments_info order.
        assert [int(m.sum()) for m in s.segments] == [x["area"] for x in things]
        assert s.category_ids == [x["category_id"] for x in things]
        assert sum(int(m.sum()) for m in s.segments) == int(np.count_nonzero(s.label_map()))  # disjoint
        ids = decode_panoptic_png(SAMPLE / "panoptic" / ann["file_name"])
        crowd_mask = np.isin(ids, [x["id"] for x in crowd])
        assert crowd_mask.sum() == sum(x["area"] for x in crowd)
        np.testing.assert_array_equal(s.ignore, crowd_mask | (ids == 0))
    assert n_crowd > 0  # the sample does exercise crowd regions


def test_reads_annotator_export(tmp_path: Path) -> None:
    """What the annotator exports is training data: the reader gets back exactly the accepted segments."""
    coco_io = pytest.importorskip("annotator.coco_io")
    from annotator.document import Project

    rng = np.random.default_rng(0)
    src = tmp_path / "photos"
    src.mkdir()
    images = {"one": rng.integers(0, 256, (30, 40, 3), dtype=np.uint8),
              "two": rng.integers(0, 256, (20, 25, 3), dtype=np.uint8)}
    for stem, img in images.items():
        assert cv2.imwrite(str(src / f"{stem}.png"), img[:, :, ::-1].copy())
    proj = Project.new(src, tmp_path / "proj")
    idx = {Path(e.path).stem: k for k, e in enumerate(proj.images)}
    stuff = proj.add_category("grass", isthing=False)
    a = np.zeros((30, 40), bool)
    a[:, :20] = True
    b = np.zeros((30, 40), bool)
    b[5:15, 22:35] = True
    c = np.zeros((30, 40), bool)
    c[18:28, 25:38] = True
    ia = proj.add_segment(idx["one"], a, stuff)
    ib = proj.add_segment(idx["one"], b, 1)
    ic = proj.add_segment(idx["one"], c, 1)
    proj.set_segment_crowd(idx["one"], ic, True)
    assert ia and ib and ic

    json_path = coco_io.export_coco_panoptic(proj, tmp_path / "export")
    r = CocoPanopticReader(json_path)
    assert "one" in r.names
    s = r[r.names.index("one")]
    np.testing.assert_array_equal(s.image, images["one"])
    got = sorted(zip(s.category_ids, [m.tobytes() for m in s.segments]))
    want = sorted([(stuff, a.tobytes()), (1, b.tobytes())])
    assert got == want
    np.testing.assert_array_equal(s.ignore, ~(a | b))  # crowd and unlabelled pixels
    assert not r.is_thing(stuff) and r.is_thing(1)
