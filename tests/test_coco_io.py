"""COCO panoptic export / import round trips, COCO instance export, and the validity check."""
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from annotator.coco_io import (export_coco_instances, export_coco_panoptic, import_coco_panoptic,
                               segment_areas, segment_stats, validate_coco_panoptic)
from annotator import document
from annotator.document import Project, ProjectError, read_id_png

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco_panoptic_sample"
H, W = 30, 50


def _box(y0, y1, x0, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


@pytest.fixture
def proj(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(1)
    for name in ("a.png", "b.jpg", "c.png"):
        cv2.imwrite(str(d / name), rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    p = Project.new(d, tmp_path / "proj")
    sky = p.add_category("sky", (0, 0, 255), isthing=False)
    p.add_segment(0, _box(0, 10, 0, 50), sky)
    s = p.add_segment(0, _box(10, 30, 5, 20), 1)
    p.add_segment(0, _box(12, 25, 25, 40), 1)
    p.set_segment_crowd(0, s, True)
    ring = _box(0, 30, 0, 50) & ~_box(5, 25, 5, 45)  # a segment with a hole
    p.add_segment(1, ring, 1)
    p.add_segment(1, _box(10, 20, 10, 20), sky)
    # image c stays unlabelled
    return p


def _segments(p: Project):
    return [(e.name, {s.id: (s.category_id, s.iscrowd) for s in e.segments.values()}, e.labels.copy())
            for e in p.images]


def test_segment_stats_matches_masks():
    lab = np.zeros((H, W), np.int32)
    lab[3:7, 10:12] = 5
    lab[20, 40] = 70000
    lab[0, 0] = 5
    st = segment_stats(lab)
    assert st == {5: (9, [0, 0, 12, 7]), 70000: (1, [40, 20, 1, 1])}


def test_segment_stats_equal_each_segments_own_mask_on_random_maps():
    """Area and box of every id, checked against its own mask, on maps from noise (every pixel its own run) to
    blocks, with 24-bit COCO ids, one row, one column and nothing labelled."""
    rng = np.random.default_rng(7)
    maps = [np.zeros((4, 6), np.int32), np.zeros((0, 3), np.int32)]
    for _ in range(30):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        pool = np.array([0, 1, 2, 300, 70000, 16_000_000])
        lab = pool[rng.integers(0, len(pool), (h, w))].astype(np.int32)
        if rng.random() < 0.5:  # blocks: long runs along the rows
            lab = np.repeat(np.repeat(lab[: max(1, h // 4), : max(1, w // 4)], 4, 0), 4, 1)[:h, :w]
        maps.append(np.ascontiguousarray(lab))
    maps += [np.array([[0, 3, 3, 0, 3]], np.int32), np.array([[3], [0], [3]], np.int32)]
    for lab in maps:
        want = {}
        for i in np.unique(lab):
            if i:
                ys, xs = np.nonzero(lab == i)
                want[int(i)] = (int(ys.size), [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                                               int(ys.max() - ys.min() + 1)])
        assert segment_stats(lab) == want


@pytest.mark.parametrize("big_ids", [False, True])
def test_segment_areas_count_every_asked_id(big_ids):
    # The segment list's areas: small ids are counted directly, imported 24-bit COCO ids through the asked ids.
    rng = np.random.default_rng(3)
    pool = np.array([0, 5, 70000, 16_000_000, 12] if big_ids else [0, 1, 2, 7, 300])
    for _ in range(20):
        lab = pool[rng.integers(0, len(pool), tuple(rng.integers(1, 30, 2)))].astype(np.int32)
        asked = [int(i) for i in pool[1:] if rng.random() < 0.7] + [99]
        want = {i: int((lab == i).sum()) for i in asked}
        assert segment_areas(lab, asked) == want
    assert segment_areas(np.zeros((0, 4), np.int32), [3]) == {3: 0}


def test_label_maps_are_stored_in_the_coco_id_colours(tmp_path):
    # id = R + 256 G + 256^2 B, the panoptic encoding other COCO tools read; written and read back exactly.
    lab = np.array([[0, 1, 256], [65536, 70000, 16_000_000]], np.int32)
    rgb = document.ids_to_rgb(lab)
    assert rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    assert rgb[1, 1].tolist() == [70000 % 256, (70000 // 256) % 256, 70000 // 65536]
    assert rgb[0, 2].tolist() == [0, 1, 0] and rgb[1, 0].tolist() == [0, 0, 1]
    path = tmp_path / "l.png"
    path.write_bytes(document.encode_id_png(lab))
    assert (read_id_png(path) == lab).all()
    assert cv2.imread(str(path))[1, 2].tolist()[::-1] == rgb[1, 2].tolist()  # a plain reader sees the same colours


def test_export_is_valid_coco_panoptic(proj, tmp_path):
    j = export_coco_panoptic(proj, tmp_path / "out")
    assert validate_coco_panoptic(j) == []
    data = json.loads(Path(j).read_text())
    assert data["image_dir"] == str(Path(proj.images[0].path).parent)
    assert [im["file_name"] for im in data["images"]] == ["a.png", "b.jpg", "c.png"]
    assert all(set(im) >= {"id", "file_name", "width", "height"} for im in data["images"])
    cats = {c["id"]: c for c in data["categories"]}
    assert cats[1]["isthing"] == 1 and cats[2]["isthing"] == 0 and cats[2]["color"] == [0, 0, 255]
    ann = data["annotations"][0]
    png = read_id_png(Path(j).parent / "panoptic" / ann["file_name"])
    np.testing.assert_array_equal(png, proj.images[0].labels)
    for s in ann["segments_info"]:
        m = png == s["id"]
        ys, xs = np.nonzero(m)
        assert s["area"] == m.sum()
        assert s["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    assert sorted(s["iscrowd"] for s in ann["segments_info"]) == [0, 0, 1]
    assert data["annotations"][2]["segments_info"] == []


def test_export_then_import_gives_same_segments(proj, tmp_path):
    j = export_coco_panoptic(proj, tmp_path / "out")
    q = import_coco_panoptic(j, project_dir=tmp_path / "reimported")
    assert [e.path for e in q.images] == [e.path for e in proj.images]  # found through "image_dir"
    assert [(c.id, c.name, c.color, c.isthing) for c in q.categories] == \
        [(c.id, c.name, c.color, c.isthing) for c in proj.categories]
    for (na, sa, la), (nb, sb, lb) in zip(_segments(proj), _segments(q)):
        assert na == nb and sa == sb
        np.testing.assert_array_equal(la, lb)
    # and the imported project is a normal saved project
    r = Project.open(tmp_path / "reimported", read_only=True)
    for (_, sa, la), (_, sb, lb) in zip(_segments(proj), _segments(r)):
        assert sa == sb
        np.testing.assert_array_equal(la, lb)


def test_import_refuses_existing_project(proj, tmp_path):
    j = export_coco_panoptic(proj, tmp_path / "out")
    with pytest.raises(ProjectError, match="already exists"):
        import_coco_panoptic(j, project_dir=proj.project_dir)


def test_import_malformed_files_raise_clear_errors(proj, tmp_path):
    j = Path(export_coco_panoptic(proj, tmp_path / "out"))
    data = json.loads(j.read_text())
    broken = tmp_path / "out" / "broken.json"
    broken.write_text("{oops")
    with pytest.raises(ProjectError, match="broken.json"):
        import_coco_panoptic(broken, png_dir=j.parent / "panoptic", project_dir=tmp_path / "x1")
    data["annotations"][0]["segments_info"].pop()
    j.write_text(json.dumps(data))
    with pytest.raises(ProjectError, match="not in segments_info"):
        import_coco_panoptic(j, project_dir=tmp_path / "x2")
    assert not (tmp_path / "x2" / "project.json").exists()


def test_validate_catches_broken_files(proj, tmp_path):
    j = Path(export_coco_panoptic(proj, tmp_path / "out"))
    good = json.loads(j.read_text())

    def check(mutate, expect):
        data = json.loads(json.dumps(good))
        mutate(data)
        j.write_text(json.dumps(data))
        problems = validate_coco_panoptic(j)
        assert any(expect in p for p in problems), problems

    segs = lambda d: d["annotations"][0]["segments_info"]  # noqa: E731
    check(lambda d: segs(d)[0].update(area=segs(d)[0]["area"] + 1), "area")
    check(lambda d: segs(d)[0].update(bbox=[0, 0, 1, 1]), "bbox")
    check(lambda d: segs(d).pop(), "not listed in segments_info")
    check(lambda d: segs(d).append(dict(segs(d)[0], id=999)), "no pixel")
    check(lambda d: segs(d).append(dict(segs(d)[0])), "listed twice")
    check(lambda d: segs(d)[0].update(category_id=77), "unknown category")
    check(lambda d: d["images"].append(dict(d["images"][0])), "used twice")
    check(lambda d: d["annotations"][0].update(file_name="nope.png"), "missing")
    check(lambda d: d["annotations"].pop(), "has no annotation")
    j.write_text("not json")
    assert validate_coco_panoptic(j)
    j.write_text(json.dumps(good))
    assert validate_coco_panoptic(j) == []


def test_validate_catches_wrong_png_size(proj, tmp_path):
    j = Path(export_coco_panoptic(proj, tmp_path / "out"))
    png = j.parent / "panoptic" / "a.png"
    cv2.imwrite(str(png), np.zeros((H + 1, W, 3), np.uint8))
    assert any("PNG is" in p for p in validate_coco_panoptic(j))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # raised inside pycocotools' decode on numpy 2
def test_export_instances_rle_round_trip(proj, tmp_path):
    from pycocotools import mask as mask_utils

    out = export_coco_instances(proj, tmp_path / "inst" / "instances.json")
    data = json.loads(Path(out).read_text())
    assert [c["name"] for c in data["categories"]] == ["object"]  # things only
    anns = data["annotations"]
    expected = [(i + 1, s.id) for i, e in enumerate(proj.images) for s in e.segments.values() if s.category_id == 1]
    assert len(anns) == len(expected) == 3
    for a in anns:
        e = proj.images[a["image_id"] - 1]
        sid = next(s.id for s in e.segments.values() if s.category_id == 1 and (e.labels == s.id).sum() == a["area"])
        rle = dict(a["segmentation"], counts=a["segmentation"]["counts"].encode())
        np.testing.assert_array_equal(mask_utils.decode(rle).astype(bool), e.labels == sid)
        assert a["iscrowd"] == int(e.segments[sid].iscrowd)
        ys, xs = np.nonzero(e.labels == sid)
        assert a["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]


@pytest.mark.skipif(not (SAMPLE / "panoptic.json").is_file(), reason="coco_panoptic_sample not present")
def test_real_coco_sample_round_trip(tmp_path):
    src = SAMPLE / "panoptic.json"
    assert validate_coco_panoptic(src) == []
    before = src.read_bytes()
    p = import_coco_panoptic(src, project_dir=tmp_path / "proj")
    assert src.read_bytes() == before
    assert not p.warnings and len(p.images) == 2
    assert p.images[0].read_image().shape == (p.images[0].height, p.images[0].width, 3)
    out = export_coco_panoptic(p, tmp_path / "out")
    assert validate_coco_panoptic(out) == []
    a, b = json.loads(before), json.loads(Path(out).read_text())
    assert [(i["file_name"], i["width"], i["height"]) for i in a["images"]] == \
        [(i["file_name"], i["width"], i["height"]) for i in b["images"]]
    assert {c["id"]: (c["name"], c["isthing"]) for c in a["categories"]} == \
        {c["id"]: (c["name"], c["isthing"]) for c in b["categories"]}
    key = lambda s: (s["id"], s["category_id"], s["area"], s["bbox"], s["iscrowd"])  # noqa: E731
    for x, y in zip(a["annotations"], b["annotations"]):
        assert sorted(map(key, x["segments_info"])) == sorted(map(key, y["segments_info"]))
        np.testing.assert_array_equal(read_id_png(SAMPLE / "panoptic" / x["file_name"]),
                                      read_id_png(Path(out).parent / "panoptic" / y["file_name"]))
    # and once more through the exported files: import(export(x)) == x
    q = import_coco_panoptic(out, project_dir=tmp_path / "proj2")
    for e, f in zip(p.images, q.images):
        assert e.segments == f.segments
        np.testing.assert_array_equal(e.labels, f.labels)


def test_export_images_in_subfolders(tmp_path):
    root = tmp_path / "data"
    for sub in ("x", "y"):
        (root / sub).mkdir(parents=True)
        cv2.imwrite(str(root / sub / "same.png"), np.zeros((H, W, 3), np.uint8))
    p = Project.new([root / "x" / "same.png", root / "y" / "same.png"], tmp_path / "p")
    p.add_segment(0, _box(0, 5, 0, 5), 1)
    p.add_segment(1, _box(5, 9, 0, 5), 1)
    j = export_coco_panoptic(p, tmp_path / "out")
    data = json.loads(Path(j).read_text())
    assert [i["file_name"] for i in data["images"]] == ["x/same.png", "y/same.png"]
    assert len({a["file_name"] for a in data["annotations"]}) == 2
    assert validate_coco_panoptic(j) == []
    q = import_coco_panoptic(j, project_dir=tmp_path / "q")
    assert [os.path.relpath(e.path, root) for e in q.images] == [os.path.join("x", "same.png"),
                                                               os.path.join("y", "same.png")]
    for e, f in zip(p.images, q.images):
        np.testing.assert_array_equal(e.labels, f.labels)


def test_trainer_reader_reads_export_unchanged(proj, tmp_path):
    reader_mod = pytest.importorskip("train.coco_panoptic")
    j = export_coco_panoptic(proj, tmp_path / "out")
    reader = reader_mod.CocoPanopticReader(j)
    assert len(reader) == len(proj.images)
    for k, e in enumerate(proj.images):
        sample = reader[k]
        np.testing.assert_array_equal(sample.image, e.read_image())
        # non-crowd segments come back as masks, crowd ones as ignore
        expected = sorted((e.labels == s.id).sum() for s in e.segments.values() if not s.iscrowd)
        assert sorted(m.sum() for m in sample.segments) == expected


def test_stuff_category_is_one_segment_per_image(proj, tmp_path):
    """COCO panoptic: one segment per stuff category per image; split stuff regions are merged on export."""
    sky = next(c.id for c in proj.categories if not c.isthing)
    proj.add_segment(2, _box(0, 5, 0, 10), sky)
    proj.add_segment(2, _box(25, 30, 40, 50), sky)
    proj.add_segment(2, _box(10, 15, 0, 10), 1)
    proj.add_segment(2, _box(10, 15, 20, 30), 1)
    j = export_coco_panoptic(proj, tmp_path / "out")
    assert validate_coco_panoptic(j) == []
    data = json.loads(Path(j).read_text())
    infos = data["annotations"][2]["segments_info"]
    assert sorted(s["category_id"] for s in infos) == [1, 1, sky]       # things stay apart, stuff is one
    (stuff,) = [s for s in infos if s["category_id"] == sky]
    png = read_id_png(Path(j).parent / "panoptic" / data["annotations"][2]["file_name"])
    np.testing.assert_array_equal(png == stuff["id"], _box(0, 5, 0, 10) | _box(25, 30, 40, 50))
    assert stuff["area"] == 100 and stuff["bbox"] == [0, 0, 50, 30]


def test_validate_catches_two_segments_of_one_stuff_category(proj, tmp_path):
    from annotator.coco_io import PanopticImage, write_coco_panoptic

    lab = np.zeros((H, W), np.int32)
    lab[0:5] = 1
    lab[25:30] = 2
    sky = next(c for c in proj.categories if not c.isthing)
    j = write_coco_panoptic(tmp_path / "raw", [PanopticImage("a.png", W, H, lab, {1: (sky.id, False),
                                                                                   2: (sky.id, False)})],
                            [sky])
    assert validate_coco_panoptic(j) == []          # the writer merged them
    data = json.loads(Path(j).read_text())
    data["annotations"][0]["segments_info"].append(dict(data["annotations"][0]["segments_info"][0], id=2))
    png_path = Path(j).parent / "panoptic" / data["annotations"][0]["file_name"]
    cv2.imwrite(str(png_path), cv2.cvtColor(document.ids_to_rgb(lab), cv2.COLOR_RGB2BGR))
    data["annotations"][0]["segments_info"][0].update(area=int((lab == 1).sum()), bbox=[0, 0, W, 5])
    data["annotations"][0]["segments_info"][1].update(area=int((lab == 2).sum()), bbox=[0, 25, W, 5])
    Path(j).write_text(json.dumps(data))
    assert any("more than one segment" in p for p in validate_coco_panoptic(j))


def test_exported_files_have_the_umasks_permissions(proj, tmp_path):
    old = os.umask(0o022)
    try:
        j = Path(export_coco_panoptic(proj, tmp_path / "out"))
        proj.add_segment(2, _box(0, 5, 0, 10), 1)          # autosave writes project.json and a label map
    finally:
        os.umask(old)
    files = [j, *sorted((j.parent / "panoptic").iterdir()), proj.json_path]
    assert files and all((f.stat().st_mode & 0o777) == 0o644 for f in files), \
        [(f.name, oct(f.stat().st_mode & 0o777)) for f in files]
