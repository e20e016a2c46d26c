"""The kit for training on a lent accelerator: `python -m train pack` (a shrunk copy of the training folders that
fits the device call's working tree) and tools/device_train.sh (the one prepared command), run here on the CPU
for a few seconds on tiny fixtures."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from train.__main__ import main as train_main
from train.readers import FolderMaskReader, SemanticLabelReader
from train.trainer import TrainConfig, _is_val

REPO = Path(__file__).resolve().parent.parent


def _fixture(root: Path, n: int = 24) -> None:
    rng = np.random.default_rng(0)
    for sub, label_dir in (("coco_mval_train", "masks"), ("camvid/train", "labels")):
        (root / sub / "images").mkdir(parents=True)
        (root / sub / label_dir).mkdir(parents=True)
        for i in range(n):
            name = f"img{i}"  # 3 of these 24 names fall in the held-out split
            img = rng.integers(0, 255, (120, 200, 3), np.uint8)
            lab = np.zeros((120, 200), np.uint8)
            if label_dir == "masks":
                lab[30:90, 50:150] = 255
                lab[20:30, 50:150] = 128  # an ignore band
            else:
                lab[:60] = 3
                lab[60:] = 5
                lab[100:, :20] = 11
            cv2.imwrite(str(root / sub / "images" / f"{name}.jpg"), img)
            cv2.imwrite(str(root / sub / label_dir / f"{name}.png"), lab)


def test_pack_shrinks_keeps_names_and_labels_and_leaves_the_held_out_files_behind(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "packed"
    _fixture(data)
    assert train_main(["pack", "coco_mval_train", "camvid/train", "--data-root", str(data), "--out", str(out),
                       "--long-side", "80"]) == 0
    src = FolderMaskReader(data / "coco_mval_train")
    packed = FolderMaskReader(out / "coco_mval_train")
    held = [n for n in src.names if _is_val(n, TrainConfig.val_fraction)]
    assert held, "the fixture must have held-out names for this test to mean anything"
    assert packed.names == [n for n in src.names if n not in held]
    s = packed[0]
    assert max(s.image.shape[:2]) == 80 and s.image.shape[:2] == (48, 80)
    raw = cv2.imread(str(out / "coco_mval_train" / "masks" / f"{packed.names[0]}.png"), cv2.IMREAD_UNCHANGED)
    assert set(np.unique(raw)) <= {0, 128, 255}   # nearest neighbour: no blended label values
    assert s.ignore.any() and s.segments[0].any()
    sem = SemanticLabelReader(out / "camvid" / "train")
    assert len(sem) == len(packed.names) and len(sem[0].segments) == 2


def test_pack_refuses_the_benchmark_and_a_folder_without_labels(tmp_path: Path, capsys) -> None:
    (tmp_path / "grabcut" / "images").mkdir(parents=True)
    (tmp_path / "grabcut" / "masks").mkdir()
    assert train_main(["pack", "grabcut", "--data-root", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    assert "never trained on" in capsys.readouterr().err
    (tmp_path / "photos" / "images").mkdir(parents=True)
    assert train_main(["pack", "photos", "--data-root", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    assert "neither masks/ nor labels/" in capsys.readouterr().err


def test_device_script_trains_on_the_packed_copy_for_its_minutes_and_leaves_weights_in_out(tmp_path: Path) -> None:
    data, packed, out = tmp_path / "data", tmp_path / "packed", tmp_path / "out"
    _fixture(data)
    assert train_main(["pack", "coco_mval_train", "camvid/train", "--data-root", str(data), "--out", str(packed),
                       "--long-side", "96"]) == 0
    out.mkdir()
    env = dict(os.environ, OUT=str(out), DATA=str(packed), RUN=str(tmp_path / "run"), MINUTES="0.05", BATCH="2",
               WORKERS="0", CROP="64", KEEP_EVERY="1", OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    r = subprocess.run(["bash", "tools/device_train.sh"], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    files = sorted(p.name for p in out.iterdir())
    assert {"weights.safetensors", "log.csv", "config.json"} <= set(files)
    assert len(files) <= 8 and all(p.stat().st_size < 16 * 2**20 for p in out.iterdir())
    assert '"out_of_time": true' in r.stdout
    from model import Segmenter

    seg = Segmenter.from_pretrained(out / "weights.safetensors", device="cpu", max_side=96)
    assert seg.predict(np.zeros((40, 50, 3), np.uint8), [(10, 10, True)]).mask.shape == (40, 50)

    env.pop("DATA")
    r = subprocess.run(["bash", str(REPO / "tools" / "device_train.sh")], cwd=tmp_path, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "train pack" in r.stdout
