"""Headless batch mode: valid COCO panoptic output, resumable, corrupt images skipped, GUI can import it."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from annotator.batch import run_auto
from annotator.coco_io import import_coco_panoptic, validate_coco_panoptic
from annotator.document import encode_id_png, read_id_png

H, W = 24, 32


class FakeSegmenter:
    """Labels each of the image's distinct colours (quantised) as one segment; counts calls."""

    device = "cpu"

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


def _panoptic_by_image(json_path):
    """{file name: (categories by name of each segment id, label map)}: an export's content, ids aside."""
    data = json.loads(Path(json_path).read_text())
    names = {c["id"]: c["name"] for c in data["categories"]}
    anns = {a["image_id"]: a for a in data["annotations"]}
    out = {}
    for im in data["images"]:
        a = anns[im["id"]]
        out[im["file_name"]] = ({s["id"]: (names[s["category_id"]], s["area"], s["bbox"]) for s in a["segments_info"]},
                                read_id_png(Path(json_path).parent / "panoptic" / a["file_name"]))
    return out


def test_shards_cover_each_image_once_and_merge_to_the_unsharded_export(tmp_path):
    from annotator.coco_io import merge_coco_panoptic

    imgs = _make_images(tmp_path / "imgs", n=7)
    whole = run_auto(imgs, tmp_path / "whole", segmenter=FakeSegmenter(), progress=False)
    parts, seen = [], []
    for k in (1, 2, 3):
        j = run_auto(imgs, tmp_path / f"part{k}", segmenter=FakeSegmenter(), progress=False, shard=(k, 3))
        assert validate_coco_panoptic(j) == [] and json.loads(Path(j).read_text())["shard"] == f"{k}/3"
        seen += [im["file_name"] for im in json.loads(Path(j).read_text())["images"]]
        parts.append(tmp_path / f"part{k}")
    assert sorted(seen) == [f"img{i}.png" for i in range(7)]  # each image once
    merged = merge_coco_panoptic(parts, tmp_path / "merged")
    assert validate_coco_panoptic(merged) == []
    a, b = _panoptic_by_image(whole), _panoptic_by_image(merged)
    assert list(a) == list(b)
    for name in a:
        assert a[name][0] == b[name][0] and np.array_equal(a[name][1], b[name][1]), name
    data = json.loads(Path(merged).read_text())
    assert [im["id"] for im in data["images"]] == list(range(1, 8))
    assert data["image_dir"] == json.loads(Path(whole).read_text())["image_dir"]
    assert import_coco_panoptic(merged).images[6].segments
    # a part with no image of a small folder is an empty export, not an error, and merges as nothing
    from annotator.batch import shard_of

    k = next(k for k in range(1, 51) if all(shard_of(f"img{i}.png", 50) != k for i in range(7)))
    empty = run_auto(imgs, tmp_path / "empty", segmenter=FakeSegmenter(), progress=False, shard=(k, 50))
    assert validate_coco_panoptic(empty) == [] and json.loads(Path(empty).read_text())["images"] == []
    again = merge_coco_panoptic(parts + [tmp_path / "empty"], tmp_path / "merged2")
    assert _panoptic_by_image(again).keys() == a.keys()


def test_merge_reconciles_categories_by_name_and_refuses_overlaps(tmp_path):
    from annotator.coco_io import merge_coco_panoptic
    from annotator.document import ProjectError

    imgs = _make_images(tmp_path / "imgs", n=3)
    one = run_auto(imgs, tmp_path / "one", segmenter=FakeSegmenter(), progress=False, shard=(1, 1))
    # a second export of other images whose categories have other ids: "segment" is 5 there, "car" is 1
    other = tmp_path / "other"
    (other / "panoptic").mkdir(parents=True)
    labels = np.zeros((H, W), np.int32)
    labels[:4, :4], labels[5:9, 5:9] = 3, 7
    (other / "panoptic" / "x.png").write_bytes(encode_id_png(labels))
    (other / "panoptic.json").write_text(json.dumps({
        "images": [{"id": 9, "file_name": "x.png", "width": W, "height": H}],
        "annotations": [{"image_id": 9, "file_name": "x.png", "segments_info": [
            {"id": 3, "category_id": 5, "area": 16, "bbox": [0, 0, 4, 4], "iscrowd": 0},
            {"id": 7, "category_id": 1, "area": 16, "bbox": [5, 5, 4, 4], "iscrowd": 0}]}],
        "categories": [{"id": 1, "name": "car", "isthing": 1}, {"id": 5, "name": "segment", "isthing": 1}],
        "image_dir": str(imgs)}))
    merged = merge_coco_panoptic([one, other], tmp_path / "merged")
    assert validate_coco_panoptic(merged) == []
    by_name = {c["name"]: c["id"] for c in json.loads(Path(merged).read_text())["categories"]}
    assert by_name == {"segment": 1, "car": 2}
    got = _panoptic_by_image(merged)["x.png"][0]
    assert got[3][0] == "segment" and got[7][0] == "car"
    before = Path(merged).read_bytes()
    with pytest.raises(ProjectError, match="img0.png is in two parts"):
        merge_coco_panoptic([one, tmp_path / "merged"], tmp_path / "again")
    with pytest.raises(ProjectError, match="would overwrite"):
        merge_coco_panoptic([one, merged], tmp_path / "merged")
    assert Path(merged).read_bytes() == before and not (tmp_path / "again" / "panoptic.json").exists()


def test_cli_shards_and_merge(tmp_path, monkeypatch, capsys):
    """`main.py auto --shard 1/2` and `2/2` cover each image once; `main.py merge` writes a valid export of all."""
    import main

    imgs = _make_images(tmp_path / "imgs", n=5)
    monkeypatch.setattr(main, "_load_segmenter", lambda *a, **k: FakeSegmenter())
    for k in (1, 2):
        assert main.main(["auto", str(imgs), "--out", str(tmp_path / f"s{k}"), "--shard", f"{k}/2"]) == 0
    names = [im["file_name"] for k in (1, 2)
             for im in json.loads((tmp_path / f"s{k}" / "panoptic.json").read_text())["images"]]
    assert sorted(names) == [f"img{i}.png" for i in range(5)]
    assert main.main(["merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out", str(tmp_path / "all")]) == 0
    merged = tmp_path / "all" / "panoptic.json"
    assert validate_coco_panoptic(merged) == [] and len(json.loads(merged.read_text())["images"]) == 5
    assert main.main(["merge", str(tmp_path / "s1"), str(tmp_path / "all"), "--out", str(tmp_path / "bad")]) == 2
    assert "two parts" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main.main(["auto", str(imgs), "--out", str(tmp_path / "x"), "--shard", "3/2"])


def test_segment_queues_its_segments_in_the_project_the_annotator_opens(tmp_path, monkeypatch):
    """The README's main job ran `main.py segment` then `main.py IMAGE --project-dir DIR`: the window opened with
    nothing on the image, the auto-segmentation only in an overlay PNG. With --project-dir the segments are the
    project's proposals, which the annotator puts up for review; accepted segments stay as they are."""
    import main
    from annotator.document import Project

    imgs = _make_images(tmp_path / "imgs", n=1)
    image = imgs / "img0.png"
    monkeypatch.setattr(main, "_load_segmenter", lambda *a, **k: FakeSegmenter())
    proj_dir = tmp_path / "proj"
    assert main.main(["segment", str(image), "--out", str(tmp_path / "o.png"), "--project-dir", str(proj_dir)]) == 0
    p = Project.open(proj_dir)
    assert len(p.images) == 1 and not p.images[0].segments
    assert len(p.proposals(0)) == 3  # the three colour regions of the picture
    keep = np.zeros((H, W), bool)
    keep[:5, :5] = True
    sid = p.add_segment(0, keep, 1)
    p.close()
    # run again on the existing project: the accepted segment is untouched, the proposals avoid it
    assert main.main(["segment", str(image), "--out", str(tmp_path / "o.png"), "--project-dir", str(proj_dir)]) == 0
    p = Project.open(proj_dir)
    assert np.array_equal(p.images[0].labels == sid, keep)
    props = p.proposals(0)
    assert len(props) == 3 and not any((m & keep).any() for m in props)
    p.close()
    # another image is not silently added to (or changed in) that project
    other = _make_images(tmp_path / "other", n=1) / "img0.png"
    assert main.main(["segment", str(other), "--out", str(tmp_path / "o.png"), "--project-dir", str(proj_dir)]) == 2
