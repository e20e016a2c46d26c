"""bench/bench_segmenter.py with tiny settings: the table, the JSON, and the memory probe in a fresh process."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _bench():
    spec = importlib.util.spec_from_file_location("bench_segmenter", ROOT / "bench" / "bench_segmenter.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_tiny_run_writes_table_and_json(tmp_path, capsys):
    bench = _bench()
    out = tmp_path / "bench.json"
    assert bench.main(["--random-init", "--synthetic", "--images", "1", "--clicks", "2", "--threads", "1",
                       "--no-peer-full", "--large", "400x300", "--large-clicks", "1", "--json", str(out),
                       "--segmenter-option", "max_side=320"]) == 0
    table = capsys.readouterr().out
    assert "click latency p50 (ms)" in table and "net/grabcut" in table and "400x300" in table
    r = json.loads(out.read_text())
    assert r["image_size"] == [640, 480] and r["images_source"] == "synthetic" and r["threads"] == 1
    assert r["segmenter_options"] == {"max_side": 320} and r["net_internal_side"] == 320  # reached the Segmenter
    for name in ("net", "grabcut"):
        click = r["methods"][name]["click"]
        assert click["n"] == 2 and 0 < click["p50"] <= click["p90"]
    assert r["methods"]["net"]["segment_image"]["n"] == 1
    preview, first = r["methods"]["net"]["first_click_preview"], r["methods"]["net"]["first_click"]
    assert preview["n"] == 1 and 0 < preview["p50"] < first["p50"]  # shown before the first click's answer
    assert "first click preview p50 (ms)" in table
    assert r["methods"]["grabcut"]["segment_image"]["n"] == 0       # --no-peer-full
    # The same clicks went to both methods.
    im = r["per_image"][0]
    assert len(im["clicks"]) == len(im["net_click_seconds"]) == len(im["grabcut_click_seconds"])
    small, large = r["memory"]["small"], r["memory"]["large"]
    assert small["size"] == [640, 480] and large["size"] == [400, 300]
    for p in (small, large):
        assert p["clicks"] == 1 and p["rss_growth_mb"] >= 0 and p["numpy_peak_mb"] > 0


def test_bench_unknown_segmenter_option_is_a_usage_error(capsys):
    """A segment_image argument given as a Segmenter option: a clear message and exit status 2, no traceback."""
    bench = _bench()
    assert bench.main(["--random-init", "--synthetic", "--images", "1", "--clicks", "1", "--no-large",
                       "--no-peer", "--segmenter-option", "max_misses_in_a_row=3"]) == 2
    err = capsys.readouterr().err
    assert "--segmenter-option" in err and "max_misses_in_a_row" in err and "Traceback" not in err


def test_bench_images_are_640x480_with_a_target():
    bench = _bench()
    images, source = bench.load_images(2, synthetic=True)
    assert source == "synthetic" and len(images) == 2
    for _, img, target, valid in images:
        assert img.shape == (480, 640, 3) and img.dtype == np.uint8
        assert target.shape == valid.shape == (480, 640) and target.sum() >= 100


def test_cover_crop_keeps_aspect_and_size():
    bench = _bench()
    a = np.zeros((300, 1000), np.uint8)
    a[:, 500:] = 1                                              # right half
    out = bench._cover_crop(a, (640, 480), 0)
    assert out.shape == (480, 640)
    assert out[:, :300].max() == 0 and out[:, 340:].min() == 1  # centre crop keeps the split in the middle


def test_tune_full_image_uses_only_the_held_out_split(tmp_path, capsys):
    """bench/tune_full_image.py: every grid row measured on exactly the files the trainer holds out, best PQ
    first; a min_score no segment reaches gives no segment at all; a one-object source is a clear error."""
    import cv2

    from train.trainer import TrainConfig, _is_val

    spec = importlib.util.spec_from_file_location("tune_full_image", ROOT / "bench" / "tune_full_image.py")
    tune = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tune)
    rng = np.random.default_rng(0)
    names = [f"frame{k}" for k in range(40)]
    held = [n for n in names if _is_val(n, TrainConfig.val_fraction)]
    assert 0 < len(held) < len(names)
    for n in names:
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "labels").mkdir(exist_ok=True)
        labels = np.zeros((40, 56), np.uint8)
        labels[:, 28:] = 1
        labels[10:30, 5:20] = 2
        cv2.imwrite(str(tmp_path / "images" / f"{n}.png"), rng.integers(0, 256, (40, 56, 3), dtype=np.uint8))
        cv2.imwrite(str(tmp_path / "labels" / f"{n}.png"), labels)
    out = tmp_path / "tune.json"
    assert tune.main(["--data", f"semantic:{tmp_path}", "--random-init", "--side", "64", "--min-score", "0,1.5",
                      "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 2 and rows[0]["pq"] >= rows[1]["pq"]
    assert all(r["images"] == len(held) for r in rows)
    strict = next(r for r in rows if r["min_score"] == 1.5)
    assert strict["tp"] == strict["fp"] == 0 and strict["fn"] == 3 * len(held)
    assert "best PQ first" in capsys.readouterr().out
    # The stop after a run of misses is a grid axis too, 'none' for no limit.
    assert tune.main(["--data", f"semantic:{tmp_path}", "--random-init", "--side", "64", "--max-misses", "none,2",
                      "--json", str(out)]) == 0
    assert sorted(str(r["max_misses_in_a_row"]) for r in json.loads(out.read_text())["rows"]) == ["2", "None"]
    masks = tmp_path / "masks_only"
    assert tune.main(["--data", f"masks:{masks}", "--random-init"]) == 2
    # Segmenter options reach every row and are recorded; a malformed one is a usage error.
    assert tune.main(["--data", f"semantic:{tmp_path}", "--random-init", "--side", "64", "--json", str(out),
                      "--segmenter-option", "guided_radius=2"]) == 0
    assert json.loads(out.read_text())["segmenter_options"] == {"guided_radius": 2}
    with pytest.raises(SystemExit) as exc:
        tune.main(["--data", f"semantic:{tmp_path}", "--random-init", "--segmenter-option", "guided_radius"])
    assert exc.value.code == 2


def test_tune_full_image_scores_bsds_validation_scenes_by_covering(tmp_path, capsys):
    """On a source with several people per image, bench/tune_full_image.py measures only the images of the fixed
    validation split, against every person, with the BSDS region measures, best covering first."""
    import cv2

    from train.splits import load_val_split

    spec = importlib.util.spec_from_file_location("tune_full_image", ROOT / "bench" / "tune_full_image.py")
    tune = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tune)
    root = tmp_path / "bsds"
    (root / "images").mkdir(parents=True)
    (root / "segs").mkdir()
    val_id = load_val_split()["bsds"][0]
    for image_id in (val_id, "not_in_the_split"):
        image = np.zeros((40, 60, 3), np.uint8)
        image[:, 30:] = (220, 40, 40)
        cv2.imwrite(str(root / "images" / f"{image_id}.jpg"), image)
        for k in range(2):
            label = np.ones((40, 60), np.uint16)
            label[:, 30:] = 2
            cv2.imwrite(str(root / "segs" / f"{image_id}_{k}.png"), label)
    out = tmp_path / "tune.json"
    assert tune.main(["--data", f"bsds:{root}", "--random-init", "--side", "48,64", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["side"] for r in rows] != [] and all(r["images"] == 1 for r in rows)
    assert rows[0]["covering"] >= rows[1]["covering"] and all(0 < r["covering"] <= 1 for r in rows)
    assert "best covering first" in capsys.readouterr().out
    # A BSDS folder with no image of the validation split is a clear error, not an empty table.
    (root / "images" / f"{val_id}.jpg").unlink()
    assert tune.main(["--data", f"bsds:{root}", "--random-init"]) == 2


def test_guide_reuse_ab_times_both_arms_on_the_same_images(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("guide_reuse_ab", ROOT / "bench" / "guide_reuse_ab.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    import cv2
    rng = np.random.default_rng(0)
    for k in range(2):
        cv2.imwrite(str(tmp_path / f"im{k}.png"), rng.integers(0, 255, (60, 80, 3), np.uint8))
    (tmp_path / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "ab.json"
    assert mod.main(["--images", str(tmp_path / "*.png"), "--random-init", "--rounds", "2", "--threads", "1",
                     "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["reused"]["n"] == r["rebuilt"]["n"] == 4  # 2 readable images x 2 rounds, the broken file skipped
    assert r["median_ratio_rebuilt_over_reused"] > 0
    assert "rebuilt/reused" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        mod.main(["--images", str(tmp_path / "*.jpg"), "--random-init"])


def test_first_click_sides_measures_every_held_out_object_at_every_side(tmp_path, capsys):
    """bench/first_click_sides.py: one row per held-out object (and none from the training split), an IoU for
    each side asked for, and a table by object size."""
    import cv2

    from train.trainer import TrainConfig, _is_val

    spec = importlib.util.spec_from_file_location("first_click_sides", ROOT / "bench" / "first_click_sides.py")
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    rng = np.random.default_rng(0)
    names = [f"frame{k}" for k in range(40)]
    held = [n for n in names if _is_val(n, TrainConfig.val_fraction)]
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    for n in names:
        labels = np.zeros((40, 56), np.uint8)
        labels[:, 28:] = 1
        labels[10:30, 5:20] = 2
        cv2.imwrite(str(tmp_path / "images" / f"{n}.png"), rng.integers(0, 256, (40, 56, 3), dtype=np.uint8))
        cv2.imwrite(str(tmp_path / "labels" / f"{n}.png"), labels)
    out = tmp_path / "sides.json"
    assert probe.main(["--data", f"semantic:{tmp_path}@2", "--random-init", "--sides", "64,96",
                       "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert sorted({r["name"] for r in rows}) == sorted(held)
    assert len(rows) == 2 * len(held)
    assert all(set(r["iou"]) == {"64", "96"} and all(0 <= v <= 1 for v in r["iou"].values()) for r in rows)
    assert f"n={len(rows)}" in capsys.readouterr().out
    # --predict adds the Segmenter's own first click; --skip-segments keeps only the later segments of each image
    assert probe.main(["--data", f"semantic:{tmp_path}@2", "--random-init", "--sides", "64", "--predict",
                       "--skip-segments", "1", "--json", str(out)]) == 0
    later = json.loads(out.read_text())["rows"]
    assert len(later) == len(held)
    assert all(set(r["iou"]) == {"64", "predict"} and 0 <= r["iou"]["predict"] <= 1 for r in later)
    assert "predict:" in capsys.readouterr().out


def _load_bench(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_open_folder_times_a_new_project_over_the_photos(capsys):
    assert _load_bench("open_folder").main(["--images", "3", "--megapixels", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "3 JPEGs of" in out and "Project.new" in out and "ms an image" in out


def test_big_image_ui_times_every_action_in_the_window_thread(capsys, monkeypatch):
    from model import Segmenter

    # An untrained net answers quickly and the same way on every machine; the window's own work is measured.
    monkeypatch.setattr(Segmenter, "from_pretrained", classmethod(lambda cls, *a, **k: Segmenter.random_init(5)))
    assert _load_bench("big_image_ui").main(["--megapixels", "0.4", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    for row in ("open the image", "click (the handler", "accept the proposal", "undo", "redo"):
        assert row in out, row


def test_large_click_times_the_working_copy_against_full_resolution(capsys, monkeypatch, tmp_path):
    import json

    from model import Segmenter

    def small_net(cls, path=None, device=None, **options):
        return Segmenter.random_init(5, max_side=160, **options)  # work_side 640: the 0.6 MP image is above it

    monkeypatch.setattr(Segmenter, "from_pretrained", classmethod(small_net))
    out_json = tmp_path / "large.json"
    assert _load_bench("large_click").main(["--megapixels", "0.6", "--repeat", "2", "--threads", "1",
                                            "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "work_side 640" in out and "working copy" in out and "full resolution" in out
    numbers = json.loads(out_json.read_text())
    assert set(numbers["median_s"]) == {"working copy", "full resolution"}
    assert numbers["iou_after_correction"]["min"] > 0.9


def test_export_stats_times_both_ways_on_the_same_map(capsys, tmp_path):
    import json

    out_json = tmp_path / "stats.json"
    assert _load_bench("export_stats").main(["--megapixels", "0.2", "--segments", "12", "--repeat", "1",
                                             "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "segment_stats (runs)" in out and "pixel sort (before)" in out and "whole export" in out
    numbers = json.loads(out_json.read_text())
    assert numbers["segments"] == 12 and all(v > 0 for v in numbers["median_s"].values())


def test_first_click_cost_measures_each_variant_on_the_validation_objects(tmp_path, capsys):
    """bench/first_click_cost.py: every validation photo object found under --data (and no other) gets a first
    click per variant; skipping the windows never costs more net passes than never skipping."""
    import cv2

    from train.splits import load_val_split

    split = load_val_split()
    rng = np.random.default_rng(0)
    for source, extra in (("coco_mval_train", "cat1_000001"), ("salient", "ecssd_train_a")):
        (tmp_path / source / "images").mkdir(parents=True)
        (tmp_path / source / "masks").mkdir(parents=True)
        for name in split[source][:2] + [extra]:
            image = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
            mask = np.zeros((60, 80), np.uint8)
            cv2.circle(mask, (40, 30), 12, 255, -1)
            image[mask > 0] = (200, 40, 40)
            cv2.imwrite(str(tmp_path / source / "images" / f"{name}.jpg"), image)
            cv2.imwrite(str(tmp_path / source / "masks" / f"{name}.png"), mask)
    cost = _load_bench("first_click_cost")
    out = tmp_path / "cost.json"
    assert cost.main(["--data", str(tmp_path), "--variant", "default", "--variant",
                      "never skip:first_click_confident=1.0", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert set(rows) == {"default", "never skip"}
    for r in rows.values():
        assert len(r["iou1"]) == 4 and all(0 <= v <= 1 for v in r["iou1"] + r["best_reading"])
        assert all(b >= i - 1e-9 for b, i in zip(r["best_reading"], r["iou1"]))
    assert all(d <= n for d, n in zip(rows["default"]["passes"], rows["never skip"]["passes"]))
    printed = capsys.readouterr().out
    assert "4 validation photo objects" in printed and "never skip" in printed
    with pytest.raises(ValueError, match="KEY=VALUE"):
        cost.main(["--data", str(tmp_path), "--variant", "bad:no_equals_sign"])


def test_encoder_latency_times_two_weights_on_the_same_clicks(tmp_path, capsys):
    import torch

    from model.net import PointerSegNet
    from model.weights import save_weights

    spec = importlib.util.spec_from_file_location("encoder_latency", ROOT / "bench" / "encoder_latency.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.manual_seed(0)
    save_weights(PointerSegNet(pretrained_backbone=False), tmp_path / "a.safetensors")
    save_weights(PointerSegNet(pretrained_backbone=False, backbone="lite1"), tmp_path / "b.safetensors")
    out = tmp_path / "lat.json"
    assert mod.main([str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors"), "--synthetic", "--images",
                     "2", "--clicks", "2", "--threads", "1", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    for key in ("a", "b"):  # every photo's first click and the same number of later clicks on both
        assert r[key]["first"]["n"] == 2 and r[key]["later"]["n"] == r["a"]["later"]["n"]
    assert r["ratio_first_p50"] > 0 and r["ratio_later_p50"] > 0
    assert "B / A, p50" in capsys.readouterr().out


def test_first_click_spill_measures_only_validation_photos_and_pairs_the_weights(tmp_path, capsys):
    """bench/first_click_spill.py: one row per validation photo object (a name outside the split is not measured);
    the summary counts a mask over twice the object with precision under 0.5 as a spill, and pairs each figure
    of later weights with the first's, object by object."""
    import cv2

    from train.splits import load_val_split

    spec = importlib.util.spec_from_file_location("first_click_spill", ROOT / "bench" / "first_click_spill.py")
    spill = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(spill)

    split = load_val_split()
    folder = tmp_path / "coco_mval_train"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir(parents=True)
    for name in split["coco_mval_train"][:2] + ["cat1_000001"]:
        image = np.full((48, 48, 3), 90, np.uint8)
        mask = np.zeros((48, 48), np.uint8)
        cv2.circle(mask, (24, 24), 9, 255, -1)
        image[mask > 0] = (200, 40, 40)
        cv2.imwrite(str(folder / "images" / f"{name}.jpg"), image)
        cv2.imwrite(str(folder / "masks" / f"{name}.png"), mask)
    rows = spill.first_click_rows(str(ROOT / "resources" / "pointer_seg.safetensors"), str(tmp_path))
    assert sorted(r["name"] for r in rows) == sorted(f"coco_mval_train/{n}" for n in split["coco_mval_train"][:2])
    for r in rows:
        assert 0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1
        assert r["spill"] == float(2 ** r["log2_area_ratio"] > 2 and r["precision"] < 0.5)

    def row(name, precision, ratio):
        return {"name": f"salient/{name}", "precision": precision, "recall": 1.0,
                "log2_area_ratio": float(np.log2(ratio)), "spill": float(ratio > 2 and precision < 0.5)}

    before = [row("a", 0.9, 1.0), row("b", 0.3, 3.0)]
    after = [row("a", 0.3, 3.0), row("b", 0.2, 5.0)]
    text = spill.summarise({"old.safetensors": before, "new.safetensors": after})
    old_line = next(x for x in text.splitlines() if "old.safetensors" in x)
    new_line = next(x for x in text.splitlines() if "new.safetensors" in x)
    assert "1/2" in old_line and "2/2 +1" in new_line  # one spill before, two after
    assert "-0.350" in new_line  # precision paired: (-0.6 - 0.1) / 2
