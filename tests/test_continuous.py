"""The run that keeps going (`python -m train continue`) and the fixed validation split it is judged on."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from train.continuous import recipe
from train.readers import BsdsReader
from train.splits import BSDS_VAL, SALIENT_VAL, held_out_names, load_val_split
from train.trainer import split_sources

REPO = Path(__file__).resolve().parent.parent


def _write_objects(folder: Path, names: list[str], size: int = 48) -> None:
    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        image = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        mask = np.zeros((size, size), np.uint8)
        cv2.circle(mask, (size // 2, size // 2), 8 + k % 5, 255, -1)
        image[mask > 0] = (200, 40, 40)
        cv2.imwrite(str(folder / "images" / f"{name}.jpg"), image)
        cv2.imwrite(str(folder / "masks" / f"{name}.png"), mask)


def _write_bsds(folder: Path, ids: list[str], people: int = 2, size: tuple[int, int] = (40, 30)) -> None:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "segs").mkdir(parents=True, exist_ok=True)
    w, h = size
    for image_id in ids:
        cv2.imwrite(str(folder / "images" / f"{image_id}.jpg"), np.full((h, w, 3), 128, np.uint8))
        for k in range(people):
            label = np.ones((h, w), np.uint16)
            label[:, w // 2 + k:] = 2 + 300 * k  # 16-bit labels, a different cut per person
            cv2.imwrite(str(folder / "segs" / f"{image_id}_{k}.png"), label)


def _names(subset) -> list[str]:
    return [subset.reader.names[i] for i in subset.indices]


def test_the_validation_split_is_fixed_and_large_enough() -> None:
    split = load_val_split()
    photos = len(split["coco_mval_train"]) + len(split["salient"])
    assert photos >= 400 and len(split["salient"]) == SALIENT_VAL
    assert len(split["bsds"]) == BSDS_VAL == 40
    assert all(len(set(v)) == len(v) for v in split.values())


def test_no_validation_name_is_in_any_training_list_of_the_recipe(tmp_path: Path) -> None:
    """Data named like the real split (some names in it, some not): the recipe's training lists, the copy-paste
    objects and backgrounds included, hold none of the validation names, and every other name is trained on."""
    split = load_val_split()
    coco_val, salient_val, bsds_val = split["coco_mval_train"][:2], split["salient"][:3], split["bsds"][:2]
    _write_objects(tmp_path / "coco_mval_train", coco_val + ["cat1_000001", "dog2_000002"])
    _write_objects(tmp_path / "salient", salient_val + ["ecssd_train_a", "pascals_train_b"])
    _write_bsds(tmp_path / "bsds", bsds_val + ["900001", "900002"])
    camvid = tmp_path / "camvid" / "train"
    (camvid / "images").mkdir(parents=True)
    (camvid / "labels").mkdir(parents=True)
    cv2.imwrite(str(camvid / "images" / "scene.jpg"), np.zeros((30, 40, 3), np.uint8))
    cv2.imwrite(str(camvid / "labels" / "scene.png"), np.zeros((30, 40), np.uint8))
    cfg = recipe(tmp_path, tmp_path / "run")
    train, val = split_sources(cfg.sources, cfg.val_fraction, held_out_names())
    held = held_out_names()
    trained: list[str] = []
    for subset, _, _ in train:
        if hasattr(subset, "objects"):  # copy-paste scenes: their objects and backgrounds
            for part in list(subset.objects) + list(subset.backgrounds):
                trained += _names(part)
        elif hasattr(subset, "reader"):
            trained += _names(subset)
            if isinstance(subset.reader, BsdsReader):
                trained += [subset.reader.image_ids[i] for i in subset.indices]
    assert not set(trained) & held
    assert {"cat1_000001", "dog2_000002", "ecssd_train_a", "pascals_train_b", "900001", "scene"} <= set(trained)
    validated = {n for subset, _ in val for n in _names(subset)}
    assert set(coco_val + salient_val) <= validated
    assert {n.rpartition("_")[0] for n in validated if n[0].isdigit()} == set(bsds_val)


def test_bsds_reader_one_item_per_person_and_a_clear_error_for_a_bad_file(tmp_path: Path) -> None:
    _write_bsds(tmp_path, ["1", "2"], people=3)
    reader = BsdsReader(tmp_path)
    assert len(reader) == 6 and reader.ids == ["1", "2"]
    sample = reader[0]
    assert len(sample.segments) == 2 and not sample.ignore.any()
    image, humans = reader.human_segmentations("2")
    assert len(humans) == 3 and humans[2].max() == 602  # 16-bit labels read as they are
    (tmp_path / "segs" / "2_1.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="2_1.png"):
        reader[4]


def _run(args: list[str], env: dict) -> subprocess.Popen:
    # A session of its own, so a test can signal the run's whole process group as a terminal's Ctrl+C does.
    return subprocess.Popen([sys.executable, "-m", "train", "continue", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _checkpoint_step(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["step"])


def test_a_killed_run_continues_from_its_last_checkpoint(tmp_path: Path) -> None:
    _write_objects(tmp_path / "objs", [f"obj{k}" for k in range(6)])
    run = tmp_path / "run"
    args = ["--out", str(run), "--data", str(tmp_path), "--crop", "64", "--batch-size", "2",
            "--sources", f"masks:{tmp_path / 'objs'}:1", "--eval-limit", "0", "--ckpt-minutes", "0.005",
            "--threads", "1"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = _run(args + ["--leg-minutes", "10"], env)
    ckpt = run / "checkpoint.pt"
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if ckpt.is_file() and _checkpoint_step(ckpt) >= 3:
                break
            time.sleep(0.3)
        assert proc.poll() is None, proc.stdout.read()
        assert ckpt.is_file()
    finally:
        proc.kill()  # SIGKILL: no handler, no last checkpoint
        proc.wait()
    killed_at = _checkpoint_step(ckpt)
    assert killed_at >= 3
    second = _run(args + ["--leg-minutes", "0.05", "--once"], env)
    out, _ = second.communicate(timeout=300)
    assert second.returncode == 0, out
    assert f"resuming from {ckpt}" in out
    assert _checkpoint_step(ckpt) > killed_at
    with open(run / "log.csv", newline="") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert steps == sorted(steps) and steps[-1] > killed_at  # the log goes on, it does not start over
    assert (run / "curve.png").is_file() and list((run / "snapshots").glob("step_*.safetensors"))


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl+C"])
def test_a_stop_signal_writes_a_checkpoint_and_exits_cleanly(tmp_path: Path, stop: int) -> None:
    _write_objects(tmp_path / "objs", [f"obj{k}" for k in range(6)])
    run = tmp_path / "run"
    args = ["--out", str(run), "--data", str(tmp_path), "--crop", "64", "--batch-size", "2",
            "--sources", f"masks:{tmp_path / 'objs'}:1", "--eval-limit", "0", "--ckpt-minutes", "60",
            "--threads", "1", "--leg-minutes", "10"]
    proc = _run(args, dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO)))
    log = run / "log.csv"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not (log.is_file() and log.stat().st_size > 40):
        time.sleep(0.3)
    os.killpg(proc.pid, stop)  # the loader worker too, as Ctrl+C or `pkill -f` reach it
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert _checkpoint_step(run / "checkpoint.pt") >= 1  # written at the stop, not only every 60 minutes


def test_measure_reports_the_validation_figures_of_the_shipped_weights(tmp_path: Path, capsys) -> None:
    """`python -m train continue --measure` measures on the validation photos only (a name outside the split is
    not measured) with the run's own protocol."""
    from train.continuous import main

    split = load_val_split()
    _write_objects(tmp_path / "coco_mval_train", split["coco_mval_train"][:1] + ["cat1_000001"])
    _write_objects(tmp_path / "salient", split["salient"][:1])
    assert main(["--measure", "--data", str(tmp_path), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "pointer_seg.safetensors: 2 validation objects" in out and "NoC@90" in out
    assert "coco: NoC@90" in out and "salient: NoC@90" in out  # each source on its own line
    assert "first negative click: IoU" in out

    # --json keeps each object's clicks, so two weights can be compared object by object (train.paired).
    from train.paired import compare

    result = tmp_path / "m.json"
    assert main(["--measure", "--data", str(tmp_path), "--threads", "1", "--json", str(result)]) == 0
    data = json.loads(result.read_text())
    assert len(data["per_image"]) == 2 and data["summary"]["val_objects"] == 2
    diff = compare(data, data)
    assert diff["noc90"]["n"] == 2 and diff["noc90"]["diff"] == 0


def test_a_curve_written_with_fewer_columns_keeps_its_rows(tmp_path: Path) -> None:
    from train.continuous import CURVE_FIELDS, append_curve, read_curve

    path = tmp_path / "curve.csv"
    path.write_text("step,train_hours,val_objects,noc85,noc90,iou1,left_at_20,weights\n0,0.0,401,4.8,7.3,0.65,53,w0\n")
    append_curve(path, {"step": 410, "noc90": 6.6, "coco_noc90": 6.5, "weights": "w1"})
    rows = read_curve(path)
    assert list(rows[0]) == CURVE_FIELDS
    assert [r["step"] for r in rows] == ["0", "410"] and rows[0]["noc90"] == "7.3" and rows[1]["coco_noc90"] == "6.5"


def test_each_leg_can_also_yield_a_cooled_down_branch_that_is_measured_apart(tmp_path: Path) -> None:
    """--cooldown-minutes: after a leg, a branch from its snapshot trains on with the rate decaying to 0, in its own
    folder, and is measured as a "cooldown" row beside the leg's own; the run's weight average is measured as an
    "ema" row; a branch stopped part way is finished at the next start, before the next leg."""
    from train.continuous import main, read_curve

    split = load_val_split()
    _write_objects(tmp_path / "coco_mval_train", split["coco_mval_train"][:1] + [f"obj{k}" for k in range(5)])
    run = tmp_path / "run"
    args = ["--out", str(run), "--data", str(tmp_path), "--crop", "64", "--batch-size", "2",
            "--sources", f"masks:{tmp_path / 'coco_mval_train'}:1", "--eval-limit", "1", "--threads", "1",
            "--leg-minutes", "0.03", "--cooldown-minutes", "0.03", "--once"]
    assert main(args) == 0
    rows = read_curve(run / "curve.csv")
    assert [r["branch"] for r in rows] == ["start", "constant", "ema", "cooldown"]
    step = int(rows[1]["step"])
    assert int(rows[2]["step"]) == int(rows[3]["step"]) == step > 0
    assert rows[2]["weights"] == str(run / "ema" / f"step_{step:07d}.safetensors")
    branch = run / "cooldown" / f"step_{step:07d}"
    assert (branch / "done").is_file() and rows[3]["weights"] == str(branch / "weights.safetensors")
    assert not (branch / "ema.safetensors").exists()  # the branch anneals; it keeps no average of its own
    assert (run / "curve.png").is_file()
    # Each candidate carries the shipping rule's verdict against the shipped weights, measured once as step 0.
    assert json.loads((run / "shipped.measure.json").read_text())["summary"]["noc90"] == float(rows[0]["noc90"])
    for r in rows[1:]:
        assert r["meets_rule"] in ("0", "1") and abs(float(r["vs_shipped_noc90"])) < 20

    (branch / "done").unlink()  # as if stopped during the branch: it is finished and measured first
    (run / "curve.csv").write_text("".join(open(run / "curve.csv").readlines()[:-1]))
    assert main(args) == 0
    rows = read_curve(run / "curve.csv")
    assert [(r["branch"], int(r["step"])) for r in rows][:4] == [("start", 0), ("constant", step), ("ema", step),
                                                                   ("cooldown", step)]
    assert [r["branch"] for r in rows[4:]] == ["constant", "ema", "cooldown"] and int(rows[4]["step"]) > step


def _clicks(noc90: dict[str, int]) -> dict:
    return {"settings": {"max_clicks": 20}, "per_image": [
        {"name": name, "objects": [{"segment": 0, "net": {"noc85": n, "noc90": n, "ious": [0.5] * n}}]}
        for name, n in noc90.items()]}


def test_the_shipping_rule_wants_a_gain_beyond_noise_and_no_source_clearly_worse() -> None:
    from train.continuous import shipping_verdict

    rng = np.random.default_rng(1)
    names = [f"coco_mval_train/c{k}" for k in range(40)] + [f"salient/s{k}" for k in range(300)]
    shipped = {n: int(rng.integers(2, 20)) for n in names}

    def candidate(coco_change: int, salient_change: int, every: int) -> dict:
        return {n: max(1, v + (coco_change if n.startswith("coco") else salient_change) * (k % every == 0))
                for k, (n, v) in enumerate(shipped.items())}

    better = shipping_verdict(_clicks(shipped), _clicks(candidate(0, -2, 2)))
    assert better["meets_rule"] == 1 and better["vs_shipped_noc90"] < -better["vs_shipped_se"]
    # A larger gain on the salient photos does not buy a clear loss on the COCO photos.
    coco_worse = shipping_verdict(_clicks(shipped), _clicks(candidate(5, -3, 1)))
    assert coco_worse["vs_shipped_noc90"] < 0 and coco_worse["meets_rule"] == 0
    # A gain inside the noise does not ship: objects a click better or worse at random, two more better than worse.
    signs = [-1] * 171 + [1] * 169
    rng.shuffle(signs)
    noisy = {n: v + sign for (n, v), sign in zip(shipped.items(), signs)}
    verdict = shipping_verdict(_clicks(shipped), _clicks(noisy))
    assert verdict["vs_shipped_noc90"] < 0 and verdict["meets_rule"] == 0


@pytest.mark.skipif(not Path("/proc/self/autogroup").is_file(), reason="no autogroup scheduling here")
def test_a_niced_run_in_its_own_session_is_also_niced_against_other_sessions() -> None:
    """`nice -n 19` alone does not lower a run started with setsid: its session's group takes half the CPU."""
    code = ("from pathlib import Path; from train.continuous import lower_priority; lower_priority(); "
            "print(Path('/proc/self/autogroup').read_text())")
    out = subprocess.run(["nice", "-n", "7", sys.executable, "-c", code], capture_output=True, text=True,
                         start_new_session=True, cwd=REPO, check=True).stdout
    assert out.strip().endswith("nice 7"), out
