"""train.evaluate: metric functions on hand-made cases, the click protocol with fake segmenters, the three
modes end to end on tiny fixtures (with the GrabCut peer), and train.peers.GrabCutPeer."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from train.evaluate import (main, mask_iou, number_of_clicks, panoptic_quality, run_click_protocol,
                            select_segments, load_segmenter)
from train.peers import GrabCutPeer
from train.sample import Sample
from train.sampling import interior_point


# ---------------------------------------------------------------- fixtures

def _scene(rng: np.random.Generator, h: int = 96, w: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """An image with three clearly coloured regions: label map 0 = background, 1 = disk, 2 = box."""
    labels = np.zeros((h, w), np.int32)
    cv2.circle(labels, (w // 3, h // 2), h // 4, 1, -1)
    labels[h // 6:h // 2, int(w * 0.65):int(w * 0.9)] = 2
    colours = np.array([[40, 120, 40], [220, 40, 40], [40, 40, 220]], np.float32)
    img = colours[labels] + rng.normal(0, 6, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8), labels


def _write_png(path: Path, a: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), a)


@pytest.fixture
def masks_dir(tmp_path: Path) -> Path:
    """GrabCut-style folder: images/ + masks/ with 0 / 255 and a 128 ignore band."""
    rng = np.random.default_rng(0)
    root = tmp_path / "masks_ds"
    for k in range(3):
        img, labels = _scene(rng)
        obj = (labels == 1).astype(np.uint8)
        band = cv2.dilate(obj, np.ones((5, 5), np.uint8)) - cv2.erode(obj, np.ones((5, 5), np.uint8))
        mask = obj * 255
        mask[band > 0] = 128
        _write_png(root / "images" / f"im{k}.png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        _write_png(root / "masks" / f"im{k}.png", mask)
    return root


@pytest.fixture
def semantic_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    root = tmp_path / "sem_ds"
    for k in range(2):
        img, labels = _scene(rng)
        classes = np.array([3, 5, 7], np.uint8)[labels]
        classes[:3] = 11  # void rows
        _write_png(root / "images" / f"s{k}.png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        _write_png(root / "labels" / f"s{k}.png", classes)
    return root


@pytest.fixture
def coco_json(tmp_path: Path) -> Path:
    rng = np.random.default_rng(2)
    root = tmp_path / "coco_ds"
    images, anns = [], []
    for k in range(2):
        img, labels = _scene(rng)
        ids = labels + 1  # segment ids 1, 2, 3
        ids[-4:] = 0      # void
        rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
        _write_png(root / "images" / f"c{k}.png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        _write_png(root / "panoptic" / f"c{k}.png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        images.append({"id": k, "file_name": f"c{k}.png", "height": 96, "width": 128})
        anns.append({"image_id": k, "file_name": f"c{k}.png",
                     "segments_info": [{"id": i, "category_id": 1, "iscrowd": 0} for i in (1, 2, 3)]})
    path = root / "panoptic.json"
    path.write_text(json.dumps({"images": images, "annotations": anns,
                                "categories": [{"id": 1, "name": "thing", "isthing": 1}]}))
    return path


# ---------------------------------------------------------------- metrics

def test_mask_iou_excludes_ignore_pixels():
    target = np.zeros((10, 10), bool)
    target[2:6, 2:6] = True                       # 16 px
    pred = np.zeros((10, 10), bool)
    pred[2:6, 2:8] = True                         # 24 px, 8 of them wrong
    assert mask_iou(pred, target) == pytest.approx(16 / 24)
    valid = np.ones((10, 10), bool)
    valid[:, 6:] = False                          # the wrong pixels are ignore pixels
    assert mask_iou(pred, target, valid) == 1.0
    assert mask_iou(np.zeros_like(pred), target) == 0.0
    assert mask_iou(np.zeros_like(pred), np.zeros_like(pred)) == 1.0


def test_number_of_clicks():
    assert number_of_clicks([0.5, 0.86, 0.95], 0.85, 20) == 2
    assert number_of_clicks([0.5, 0.86, 0.95], 0.90, 20) == 3
    assert number_of_clicks([0.5, 0.6], 0.90, 20) == 20      # never reached
    assert number_of_clicks([0.9], 0.90, 20) == 1            # ">=" counts


def _gt_two_segments():
    a = np.zeros((20, 20), bool)
    a[:, :10] = True
    b = ~a
    return [a, b]


def test_pq_perfect_is_one_and_empty_is_zero():
    segs = _gt_two_segments()
    ignore = np.zeros((20, 20), bool)
    labels = np.zeros((20, 20), np.int32)
    labels[segs[0]], labels[segs[1]] = 5, 9      # any ids
    r = panoptic_quality(labels, segs, ignore)
    assert (r["pq"], r["sq"], r["rq"]) == (1.0, 1.0, 1.0)
    assert (r["tp"], r["fp"], r["fn"]) == (2, 0, 0)
    assert r["mean_best_iou"] == 1.0
    r = panoptic_quality(np.zeros((20, 20), np.int32), segs, ignore)
    assert r["pq"] == 0.0 and r["fn"] == 2 and r["fp"] == 0 and r["mean_best_iou"] == 0.0


def test_pq_partial_match_false_positive_and_void():
    gt = np.zeros((20, 20), bool)
    gt[0:10, 0:10] = True                          # 100 px
    ignore = np.zeros((20, 20), bool)
    ignore[15:, :] = True                          # void rows 15..19
    labels = np.zeros((20, 20), np.int32)
    labels[0:10, 0:8] = 1                          # 80 px inside gt: IoU 0.8
    labels[0:5, 12:20] = 2                         # 40 px elsewhere: a false positive
    labels[14:20, 12:20] = 3                       # 48 px, 40 of them void: mostly void, not a FP
    r = panoptic_quality(labels, [gt], ignore)
    assert (r["tp"], r["fp"], r["fn"]) == (1, 1, 0)
    assert r["sq"] == pytest.approx(0.8)
    assert r["rq"] == pytest.approx(1 / 1.5)
    assert r["pq"] == pytest.approx(0.8 / 1.5)
    # Void pixels do not count in the union: gt plus some void is still a perfect match.
    labels = np.zeros((20, 20), np.int32)
    gt2 = np.zeros((20, 20), bool)
    gt2[10:15, :] = True
    labels[10:20, :] = 1
    r = panoptic_quality(labels, [gt2], ignore)
    assert r["pq"] == 1.0
    # A prediction splitting a segment in two halves (IoU 0.5 each) matches nothing.
    labels = np.zeros((20, 20), np.int32)
    labels[0:10, 0:5], labels[0:10, 5:10] = 1, 2
    r = panoptic_quality(labels, [gt], np.zeros((20, 20), bool))
    assert (r["tp"], r["fp"], r["fn"], r["pq"]) == (0, 2, 1, 0.0)
    assert r["best_ious"] == [0.5]


# ---------------------------------------------------------------- click protocol

def _disk_target() -> tuple[np.ndarray, np.ndarray]:
    target = np.zeros((60, 80), bool)
    cv2.circle(target.view(np.uint8), (40, 30), 15, 1, -1)
    return target, np.ones_like(target)


@pytest.mark.parametrize("k", [1, 3, 7])
def test_noc_counts_the_click_that_returns_the_ground_truth(k):
    target, valid = _disk_target()
    half = target.copy()
    half[:, 40:] = False                           # IoU about 0.5

    def fake(image, clicks):
        return target if len(clicks) >= k else half

    r = run_click_protocol(fake, np.zeros((60, 80, 3), np.uint8), target, valid, max_clicks=10)
    assert r["noc85"] == k and r["noc90"] == k
    assert r["ious"][k - 1] == 1.0 and all(v < 0.6 for v in r["ious"][:k - 1])
    assert len(r["ious"]) == 10                    # a perfect mask keeps its IoU for later click counts
    assert len(r["clicks"]) == k                   # and asks for no more clicks


def test_click_protocol_places_clicks_on_errors_and_counts_failures():
    target, valid = _disk_target()
    extra = target.copy()
    extra[0:20, 0:20] = True                       # wrong pixels away from the object
    seen = []

    def fake(image, clicks):
        seen.append(list(clicks))
        return extra if len(clicks) == 1 else np.zeros_like(target)

    r = run_click_protocol(fake, np.zeros((60, 80, 3), np.uint8), target, valid, max_clicks=4)
    x, y, pos = r["clicks"][0]
    assert pos and (x, y) == interior_point(target)          # first click: interior-most point
    x, y, pos = r["clicks"][1]
    assert not pos and x < 20 and y < 20                     # negative click inside the wrong region
    assert r["clicks"][2][2] is True                         # everything missed: positive click
    assert r["noc90"] == 4 and r["noc85"] == 4               # never reached: max_clicks
    assert seen[-1] == [tuple(c) for c in r["clicks"]]       # the growing list is passed each time


def test_click_protocol_ignore_pixels_attract_no_click():
    target, valid = _disk_target()
    valid[:, 40:] = False                                    # right half ignored
    pred = target.copy()
    pred[:, 40:] = False                                     # misses only ignored pixels
    r = run_click_protocol(lambda im, c: pred, np.zeros((60, 80, 3), np.uint8), target, valid, 5)
    assert r["ious"][0] == 1.0 and len(r["clicks"]) == 1 and r["noc90"] == 1
    assert r["clicks"][0][0] < 40                            # the first click is in the valid part


def test_select_segments_largest_first_with_min_area():
    h, w = 100, 100
    segs = [np.zeros((h, w), bool) for _ in range(4)]
    segs[0][:10, :10] = True        # 100 px = 1%: kept
    segs[1][20:60, 20:60] = True    # 1600
    segs[2][70:72, 70:72] = True    # 4 px: too small
    segs[3][80:, :50] = True        # 1000
    s = Sample(np.zeros((h, w, 3), np.uint8), segs, np.zeros((h, w), bool))
    assert select_segments(s, True, 10) == [1, 3, 0]
    assert select_segments(s, True, 2) == [1, 3]
    assert select_segments(s, False, 10) == [0, 1, 2, 3]    # one-object data: every object


# ---------------------------------------------------------------- modes end to end

def _run(argv: list[str], out: Path) -> dict:
    assert main(argv + ["--json", str(out), "--random-init", "--threads", "1", "--quiet"]) == 0
    return json.loads(out.read_text())


COMMON_KEYS = {"mode", "command", "weights", "data", "settings", "n_images", "skipped", "methods", "ratio",
               "per_image", "seconds_total"}


def test_clicks_mode_on_masks_with_grabcut(masks_dir, tmp_path, capsys):
    r = _run(["clicks", "--data", f"masks:{masks_dir}", "--peer", "grabcut", "--limit", "2",
              "--max-clicks", "3"], tmp_path / "clicks.json")
    out = capsys.readouterr().out
    assert "NoC@90" in out and "negGain" in out
    assert COMMON_KEYS <= set(r)
    assert r["n_images"] == 2 and r["n_objects"] == 2 and "--max-clicks 3" in r["command"]
    # Both GrabCut drivers run; the ratio row is against the one with fewer clicks to 90%.
    peers = {p: r["methods"][p]["noc90"] for p in ("grabcut", "grabcut-fresh")}
    assert r["stronger_peer"] == min(peers, key=peers.get)
    assert f"ratio(net/{r['stronger_peer']})" in out
    for name in ("net", "grabcut", "grabcut-fresh"):
        s = r["methods"][name]
        for key in ("noc85", "noc90", "iou_at_1", "fails_at_90", "miou_per_click", "seconds_per_click",
                    "seconds_per_image"):
            assert key in s
        assert len(s["miou_per_click"]) == 3 and 1 <= s["noc90"] <= 3
        obj = r["per_image"][0]["objects"][0][name]
        assert len(obj["ious"]) == 3 and 1 <= len(obj["clicks"]) <= 3
    assert set(r["ratio"]) >= {"noc85", "noc90", "iou_at_1", "seconds_per_click"}
    # GrabCut on a clean red disk on green, with its own clicks, is near perfect: the peer is no strawman.
    assert r["methods"]["grabcut"]["miou_per_click"][-1] > 0.9


def test_single_mode_on_semantic_labels(semantic_dir, tmp_path):
    r = _run(["single", "--data", f"semantic:{semantic_dir}", "--peer", "grabcut", "--limit", "2",
              "--max-segments-per-image", "2", "--seed", "3"], tmp_path / "single.json")
    assert COMMON_KEYS <= set(r)
    assert r["n_objects"] == 4 and r["data"]["fully_labelled"] is True
    objs = r["per_image"][0]["objects"]
    assert objs[0]["area"] >= objs[1]["area"]             # largest first
    for name in ("net", "grabcut"):
        assert 0.0 <= r["methods"][name]["miou"] <= 1.0
        assert objs[0][name]["seconds"] > 0
    # The same seed gives the same pointers.
    r2 = _run(["single", "--data", f"semantic:{semantic_dir}", "--limit", "2", "--max-segments-per-image", "2",
               "--seed", "3"], tmp_path / "single2.json")
    assert [o["click"] for o in r2["per_image"][0]["objects"]] == [o["click"] for o in objs]
    assert "grabcut" not in r2["methods"] and r2["ratio"] == {}


def test_upscale_measures_the_same_objects_at_a_larger_size(semantic_dir, tmp_path):
    """--upscale 2: the same segments at twice the side, four times the area, still disjoint."""
    from train.evaluate import upscale_sample
    from train.sample import Sample

    base = _run(["single", "--data", f"semantic:{semantic_dir}", "--limit", "1", "--max-segments-per-image", "2"],
                tmp_path / "a.json")
    up = _run(["single", "--data", f"semantic:{semantic_dir}", "--limit", "1", "--max-segments-per-image", "2",
               "--upscale", "2"], tmp_path / "b.json")
    w, h = base["per_image"][0]["size"]
    assert up["per_image"][0]["size"] == [2 * w, 2 * h] and up["settings"]["upscale"] == 2.0
    for a, b in zip(base["per_image"][0]["objects"], up["per_image"][0]["objects"]):
        assert b["area"] == 4 * a["area"]
    seg = np.zeros((3, 4), bool)
    seg[1, 1:3] = True
    s = upscale_sample(Sample(np.zeros((3, 4, 3), np.uint8), [seg, ~seg], np.zeros((3, 4), bool)), 3)
    assert s.image.shape == (9, 12, 3) and s.segments[0].sum() == 18 and not (s.segments[0] & s.segments[1]).any()


def test_full_mode_on_coco_panoptic(coco_json, tmp_path, capsys):
    r = _run(["full", "--data", f"coco:{coco_json}", "--peer", "grabcut", "--limit", "2"], tmp_path / "full.json")
    assert "PQ" in capsys.readouterr().out
    assert COMMON_KEYS <= set(r) and r["n_images"] == 2
    assert r["stronger_peer"] in ("grabcut", "grabcut-fresh")
    for name in ("net", "grabcut", "grabcut-fresh"):
        s = r["methods"][name]
        assert {"pq", "sq", "rq", "mean_best_iou", "tp", "fp", "fn", "seconds_per_image"} <= set(s)
        assert s["tp"] + s["fn"] == 6                      # 3 segments in each of 2 images
        assert 0.0 <= s["pq"] <= 1.0
    # Sequential GrabCut finds the clean coloured regions.
    assert r["methods"]["grabcut"]["mean_best_iou"] > 0.7
    # The peer keeps segments down to the net's smallest by default (the same protocol); --peer-min-area
    # reaches the peer: no region here covers 90% of an image.
    import inspect

    from model.segmenter import Segmenter
    net_default = inspect.signature(Segmenter.segment_image).parameters["min_area_fraction"].default
    assert r["settings"]["peer_min_area_fraction"] == net_default
    r2 = _run(["full", "--data", f"coco:{coco_json}", "--peer", "grabcut", "--limit", "2", "--peer-min-area", "0.9"],
              tmp_path / "full2.json")
    assert r2["settings"]["peer_min_area_fraction"] == 0.9
    r3 = _run(["full", "--data", f"coco:{coco_json}", "--peer", "grabcut", "--limit", "1", "--peer-miss-disk", "1.0"],
              tmp_path / "full3.json")
    assert r3["settings"]["peer_miss_disk_fraction"] == 1.0
    assert r3["settings"]["net_full_options"] == {}
    r4 = _run(["full", "--data", f"coco:{coco_json}", "--limit", "1", "--miss-disk", "1.0"], tmp_path / "full4.json")
    assert r4["settings"]["net_full_options"] == {"miss_disk_fraction": 1.0}
    r5 = _run(["full", "--data", f"coco:{coco_json}", "--limit", "1", "--max-misses", "none"], tmp_path / "full5.json")
    assert r5["settings"]["net_full_options"] == {"max_misses_in_a_row": None}
    r6 = _run(["full", "--data", f"coco:{coco_json}", "--limit", "1", "--refine-passes", "0"], tmp_path / "full6.json")
    assert r6["settings"]["net_full_options"] == {"refine_passes": 0}
    assert r["settings"]["peer_miss_disk_fraction"] == inspect.signature(
        Segmenter.segment_image).parameters["miss_disk_fraction"].default
    assert r2["methods"]["grabcut"]["tp"] == r2["methods"]["grabcut"]["fp"] == 0


def test_full_mode_refuses_one_object_data(masks_dir, tmp_path, capsys):
    assert main(["full", "--data", f"masks:{masks_dir}", "--random-init", "--threads", "1"]) == 2
    assert "full label maps" in capsys.readouterr().err


def test_bad_image_is_reported_and_skipped(masks_dir, tmp_path, capsys):
    (masks_dir / "images" / "im0.png").write_bytes(b"not a png")
    r = _run(["clicks", "--data", f"masks:{masks_dir}", "--limit", "2", "--max-clicks", "1"], tmp_path / "r.json")
    assert r["n_images"] == 1 and len(r["skipped"]) == 1
    assert "im0.png" in r["skipped"][0]["error"]
    assert "skipped 1" in capsys.readouterr().out


def test_bad_data_spec_and_weights_give_clear_errors(tmp_path, capsys):
    assert main(["single", "--data", f"masks:{tmp_path / 'nope'}", "--random-init"]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["single", "--data", "bogus:x", "--random-init"]) == 2
    assert "bogus" in capsys.readouterr().err
    bad = tmp_path / "w.safetensors"
    bad.write_bytes(b"garbage")
    assert main(["single", "--data", "synthetic:1", "--weights", str(bad)]) == 2
    assert "w.safetensors" in capsys.readouterr().err


def test_trainer_checkpoint_loads_as_weights(tmp_path):
    from model.net import PointerSegNet

    torch.manual_seed(1)
    net = PointerSegNet(pretrained_backbone=False)
    ckpt = tmp_path / "checkpoint.pt"
    torch.save({"net": net.state_dict(), "step": 7}, ckpt)
    seg, desc = load_segmenter(str(ckpt), False)
    assert desc["info"]["step"] == 7 and len(desc["sha256"]) == 64
    from model import Segmenter

    ref = Segmenter(net).net.state_dict()       # the Segmenter folds BatchNorm: compare like with like
    other = Segmenter.random_init(seed=2).net.state_dict()
    k = next(iter(ref))
    assert torch.equal(seg.net.state_dict()[k], ref[k]) and not torch.equal(other[k], ref[k])


# ---------------------------------------------------------------- the GrabCut peer

def test_grabcut_peer_follows_clicks():
    img, labels = _scene(np.random.default_rng(5))
    disk = labels == 1
    peer = GrabCutPeer()
    x, y = interior_point(disk)
    m1 = peer.predict(img, [(x, y, True)])
    assert m1.shape == disk.shape and mask_iou(m1, disk) > 0.9
    # A positive click on the box adds it; a negative one on it takes it away again.
    bx, by = interior_point(labels == 2)
    m2 = peer.predict(img, [(x, y, True), (bx, by, True)])
    assert mask_iou(m2, labels > 0) > 0.85
    m3 = peer.predict(img, [(x, y, True), (bx, by, True), (bx, by, False)])
    assert not m3[by, bx] and m3[y, x]
    # An ROI bounds the mask, and a first click outside it finds nothing.
    roi = np.zeros_like(disk)
    roi[:, : x + 1] = True
    assert not (peer.predict(img, [(x, y, True)], roi=roi) & ~roi).any()
    assert not peer.predict(img, [(bx, by, True)], roi=roi).any()


def test_full_image_peers_follow_the_nets_pointer_rule_after_a_miss(monkeypatch) -> None:
    """Same protocol for peer and net: after a miss the peer clears the same part of the missed pointer's
    inscribed disk as Segmenter.segment_image does, so it gets as many further pointers."""
    import inspect

    from model.segmenter import Segmenter
    from train.evaluate import GrabCutMethod
    from train.peers import GrabCutPeer

    method = GrabCutMethod(full_image_side=120)
    net_rule = inspect.signature(Segmenter.segment_image).parameters["miss_disk_fraction"].default
    assert method.miss_disk_fraction == net_rule < 1.0
    pointers: list[tuple] = []

    def always_miss(self, image, clicks, roi=None):
        pointers.append(clicks[0])
        return np.zeros(image.shape[:2], bool)

    monkeypatch.setattr(GrabCutPeer, "predict", always_miss)
    image = np.zeros((120, 120, 3), np.uint8)
    assert not method.segment_image(image).any()
    with_net_rule = len(pointers)
    pointers.clear()
    GrabCutPeer().segment_image(image, side=120, min_area_fraction=method.min_area_fraction, miss_disk_fraction=1.0)
    assert with_net_rule > len(pointers) >= 1


def test_grabcut_peer_segment_image_finds_regions():
    img, labels = _scene(np.random.default_rng(6))
    out = GrabCutPeer().segment_image(img)
    assert out.shape == labels.shape and out.dtype.kind == "i"
    r = panoptic_quality(out, [labels == k for k in range(3)], np.zeros(labels.shape, bool))
    assert r["mean_best_iou"] > 0.8


def test_held_out_measures_only_the_trainers_validation_files(tmp_path, capsys):
    """--held-out: a run trained on a folder can still be measured on the files its split kept out."""
    from train.trainer import TrainConfig, _is_val

    rng = np.random.default_rng(5)
    root = tmp_path / "photos"
    names = [f"p{k}" for k in range(40)]
    for name in names:
        img, labels = _scene(rng, 64, 64)
        _write_png(root / "images" / f"{name}.png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        _write_png(root / "masks" / f"{name}.png", (labels == 1).astype(np.uint8) * 255)
    expected = {n for n in names if _is_val(n, TrainConfig.val_fraction)}
    assert 0 < len(expected) < len(names)
    r = _run(["clicks", "--data", f"masks:{root}", "--held-out", "--max-clicks", "1"], tmp_path / "h.json")
    assert {Path(im["name"]).stem for im in r["per_image"]} == expected
    assert r["settings"]["held_out"] is True
    for name in expected:  # a folder with none of the held-out files is a clear error, not an empty table
        for sub in ("images", "masks"):
            (root / sub / f"{name}.png").unlink()
    assert main(["clicks", "--data", f"masks:{root}", "--held-out", "--random-init", "--threads", "1"]) == 2
    assert "held-out split" in capsys.readouterr().err


def test_first_negative_gain_is_the_iou_change_of_the_first_negative_click():
    from train.evaluate import first_negative_gain

    clicks = [(1, 1, True), (2, 2, True), (3, 3, False), (4, 4, False)]
    assert first_negative_gain(clicks, [0.5, 0.6, 0.9, 0.95]) == pytest.approx(0.3)
    assert first_negative_gain(clicks[:2], [0.5, 0.6]) is None
    # In the protocol: a method whose mask spills onto a second object gets a negative click there; removing
    # the whole wrong region gains more than a notch does.
    from train.evaluate import run_click_protocol

    target = np.zeros((40, 80), bool)
    target[10:30, 5:35] = True
    spill = np.zeros_like(target)
    spill[10:30, 45:75] = True
    valid = np.ones_like(target)

    def whole(image, clicks):   # the first click finds object + spill; a negative click removes the spill
        return target if any(not c[2] for c in clicks) else target | spill

    def notch(image, clicks):   # a negative click removes only a 5 px disk
        m = target | spill
        for x, y, p in clicks:
            if not p:
                yy, xx = np.ogrid[:40, :80]
                m = m & ~((xx - x) ** 2 + (yy - y) ** 2 <= 25)
        return m

    a = run_click_protocol(whole, None, target, valid, 3)
    b = run_click_protocol(notch, None, target, valid, 3)
    assert a["first_negative_gain"] == pytest.approx(1.0 - 0.5)
    assert 0 < b["first_negative_gain"] < 0.1


def test_fresh_grabcut_peer_on_a_tiny_image():
    from train.peers import GrabCutFreshPeer

    rng = np.random.default_rng(0)
    img = (rng.normal(0, 8, (60, 80, 3)) + np.array([40, 160, 40])).clip(0, 255).astype(np.uint8)
    obj = np.zeros((60, 80), bool)
    obj[20:45, 25:60] = True
    img[obj] = (rng.normal(0, 8, (obj.sum(), 3)) + np.array([200, 30, 30])).clip(0, 255).astype(np.uint8)
    peer = GrabCutFreshPeer()
    m = peer.predict(img, [(42, 32, True)])
    inter, union = (m & obj).sum(), (m | obj).sum()
    assert inter / union > 0.9
    # Stateless: the same clicks give the same mask whatever ran before; a negative click there removes pixels.
    peer.predict(img, [(5, 5, True)])
    assert np.array_equal(peer.predict(img, [(42, 32, True)]), m)
    roi = np.ones_like(obj)
    roi[:, 50:] = False
    assert not (peer.predict(img, [(42, 32, True)], roi=roi) & ~roi).any()


def test_segmenter_options_reach_the_segmenter_and_the_json(tmp_path, capsys):
    r = _run(["clicks", "--data", "synthetic:1", "--max-clicks", "2", "--segmenter-option", "max_side=96",
              "--segmenter-option", "flip_average=true", "--segmenter-option", "refine_first=fresh"],
             tmp_path / "opts.json")
    assert r["settings"]["segmenter_options"] == {"max_side": 96, "flip_average": True, "refine_first": "fresh"}
    assert r["n_objects"] > 0
    assert main(["clicks", "--data", "synthetic:1", "--random-init", "--segmenter-option", "no_such_knob=1"]) == 2
    assert "no_such_knob" in capsys.readouterr().err
    assert main(["clicks", "--data", "synthetic:1", "--random-init", "--segmenter-option", "refine_first=maybe"]) == 2
    assert "refine_first" in capsys.readouterr().err


def test_full_mode_on_several_peoples_segmentations_reports_bsds_measures(tmp_path, capsys):
    """A BSDS folder (several people per image): one row per image, covering / PRI / VoI against every person,
    and Felzenszwalb beside the net at its best setting of the sweep."""
    root = tmp_path / "bsds"
    (root / "images").mkdir(parents=True)
    (root / "segs").mkdir()
    for image_id in ("101", "102"):
        image = np.zeros((40, 60, 3), np.uint8)
        image[:, 30:] = (220, 40, 40)
        cv2.imwrite(str(root / "images" / f"{image_id}.jpg"), image)
        for k, cut in enumerate((30, 32)):  # two people who draw the same edge 2 px apart
            label = np.ones((40, 60), np.uint16)
            label[:, cut:] = 2
            cv2.imwrite(str(root / "segs" / f"{image_id}_{k}.png"), label)
    r = _run(["full", "--data", f"bsds:{root}"], tmp_path / "bsds.json")
    out = capsys.readouterr().out
    assert "covering" in out and "felzenszwalb best covering" in out
    assert r["n_images"] == 2  # one item per image, not per person
    regions = r["regions"]
    assert regions["n_images"] == 2 and regions["humans_per_image"] == 2
    net = regions["methods"]["net"]
    assert 0.0 < net["covering"] <= 1.0 and 0.0 <= net["pri"] <= 1.0 and net["voi"] >= 0.0
    best = regions["felzenszwalb"]["best"]
    assert best["covering"] > 0.9  # two flat colours: the graph segmentation finds the edge at some setting
    assert r["methods"]["net"]["tp"] + r["methods"]["net"]["fn"] == 8  # 2 segments x 2 people x 2 images
