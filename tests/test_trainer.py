"""The trainer (train.trainer.train and `python -m train`): it learns, resumes, stops on request, runs from the
command line and under torchrun with two CPU processes. Tiny crops and step counts keep this fast."""
from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import IterableDataset

import train.trainer as trainer
from model import Segmenter
from model.net import PointerSegNet
from model.weights import load_weights
from train.__main__ import parse_args
from train.trainer import TrainConfig, train

REPO = Path(__file__).resolve().parent.parent


def _cfg(out: Path, **kw) -> TrainConfig:
    base = dict(sources=["synthetic:8"], out=str(out), steps=3, batch_size=2, crop=64, lr=1e-3, warmup=1,
                val_every=1000, val_examples=2, ckpt_every=1, log_every=1, workers=0, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def _log(out: Path) -> list[dict]:
    with open(out / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    return env


def test_training_lowers_the_loss_on_a_fixed_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Overfitting a fixed batch is the smallest proof that loss, gradients and optimizer work together."""

    class FixedExamples(IterableDataset):
        """The same 4 examples, drawn from the configured sources by the real sampler, over and over."""

        def __init__(self, sources, cfg, seed, start_step=0):
            self.examples = trainer.fixed_examples([(r, full) for r, _, full in sources], cfg, 4, seed=7)
            assert len(self.examples) == 4

        def __iter__(self):
            while True:
                yield from self.examples

    monkeypatch.setattr(trainer, "MixedExamples", FixedExamples)
    out = tmp_path / "run"
    summary = train(_cfg(out, steps=30, batch_size=4, ckpt_every=1000))
    assert summary["steps"] == 30 and not summary["stopped"]
    rows = _log(out)
    assert [int(r["step"]) for r in rows] == list(range(1, 31))
    losses = np.array([float(r["loss"]) for r in rows])
    ious = np.array([float(r["train_iou"]) for r in rows])
    assert np.isfinite(losses).all()
    assert losses[-3:].mean() < 0.8 * losses[:3].mean(), losses
    assert ious[-3:].mean() > ious[:3].mean()
    assert 0.0 <= float(rows[-1]["val_iou"]) <= 1.0  # validated at the last step


def test_keep_every_leaves_loadable_snapshots_of_a_run(tmp_path: Path) -> None:
    """A long run's intermediate weights stay on disk, each loadable by the Segmenter, so they can be compared
    on held-out data afterwards; the last one equals the run's final weights."""
    out = tmp_path / "run"
    train(_cfg(out, steps=4, keep_every=2))
    snaps = sorted((out / "snapshots").glob("*.safetensors"))
    assert [p.name for p in snaps] == ["step_000002.safetensors", "step_000004.safetensors"]
    final, _ = load_weights(out / "weights.safetensors")
    last, info = load_weights(snaps[-1])
    assert info["steps"] == 4
    for k, v in final.items():
        assert torch.equal(last[k], v), k
    first, _ = load_weights(snaps[0])
    assert any(not torch.equal(first[k], v) for k, v in final.items())
    seg = Segmenter.from_pretrained(snaps[0], device="cpu", max_side=96)
    assert seg.predict(np.zeros((40, 50, 3), np.uint8), [(10, 10, True)]).mask.shape == (40, 50)


def test_resume_continues_from_the_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(_cfg(out, steps=3))
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 3
    assert json.loads((out / "config.json").read_text())["steps"] == 3

    # Resuming at the end trains nothing: the weights written are exactly the checkpoint's (not a fresh net).
    summary = train(_cfg(out, steps=3, resume=True))
    assert summary["steps"] == 3
    state, info = load_weights(out / "weights.safetensors")
    assert info["steps"] == 3
    for k, v in ckpt["net"].items():
        assert torch.equal(state[k], v), k

    summary = train(_cfg(out, steps=5, resume=True))
    assert summary["steps"] == 5
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 5
    rows = _log(out)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5]  # appended, one header
    assert (out / "log.csv").read_text().count("step,loss") == 1
    state5, info5 = load_weights(out / "weights.safetensors")
    assert info5["steps"] == 5 and info5["sources"] == ["synthetic:8"]
    assert any(not torch.equal(state5[k], v) for k, v in ckpt["net"].items())  # it trained on
    seg = Segmenter.from_pretrained(out / "weights.safetensors", device="cpu", max_side=96)
    pred = seg.predict(np.zeros((40, 50, 3), np.uint8), [(10, 10, True)])
    assert pred.mask.shape == (40, 50)

    # Without --resume the run starts over and the log is rewritten.
    train(_cfg(out, steps=2))
    assert [int(r["step"]) for r in _log(out)] == [1, 2]


def test_the_weight_average_follows_each_step_and_survives_a_resume(tmp_path: Path) -> None:
    """--ema D: after every step the average moves to D * average + (1 - D) * weights, from the start weights, and
    a resumed run goes on from the saved average (not from its resumed weights)."""
    out, d = tmp_path / "run", 0.75
    start = tmp_path / "start.safetensors"
    from model.weights import save_weights
    save_weights(PointerSegNet(pretrained_backbone=False), start)
    w0, _ = load_weights(start)
    train(_cfg(out, steps=1, init_weights=str(start), ema=d))
    w1, _ = load_weights(out / "weights.safetensors")
    e1, info = load_weights(out / "ema.safetensors")
    assert info["ema"] == d
    names = [k for k in w0 if not any(b in k for b in ("running_", "num_batches"))]
    moved = [k for k in names if not torch.equal(w1[k], w0[k])]
    assert moved  # it trained
    for k in moved:
        torch.testing.assert_close(e1[k], d * w0[k] + (1 - d) * w1[k])
    train(_cfg(out, steps=2, init_weights=str(start), ema=d, resume=True))
    w2, _ = load_weights(out / "weights.safetensors")
    e2, _ = load_weights(out / "ema.safetensors")
    for k in moved:
        torch.testing.assert_close(e2[k], d * e1[k] + (1 - d) * w2[k])
    assert not (tmp_path / "plain" / "ema.safetensors").exists()
    train(_cfg(tmp_path / "plain", steps=1))
    assert not (tmp_path / "plain" / "ema.safetensors").exists()
    with pytest.raises(ValueError, match="--ema"):
        train(_cfg(tmp_path / "bad", steps=1, ema=1.0))


def test_init_weights_and_stop_file(tmp_path: Path) -> None:
    init = tmp_path / "init.safetensors"
    torch.manual_seed(3)
    from model.weights import save_weights

    save_weights(PointerSegNet(pretrained_backbone=False), init)
    stop = tmp_path / "STOP"
    stop.write_text("")
    out = tmp_path / "run"
    summary = train(_cfg(out, steps=50, init_weights=str(init), ckpt_every=1000), stop_file=str(stop))
    assert summary["stopped"] and summary["steps"] == 1
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 1  # saved on stop
    state, info = load_weights(out / "weights.safetensors")
    assert info["steps"] == 1
    init_state, _ = load_weights(init)
    # One small step from the given weights: close to them, far from any other start.
    k = "head.weight"
    assert not torch.equal(state[k], init_state[k])
    assert (state[k] - init_state[k]).abs().max() < 0.01


def test_parse_args_config_and_flags(tmp_path: Path) -> None:
    conf = tmp_path / "c.json"
    conf.write_text(json.dumps({"sources": ["synthetic:10"], "steps": 7, "lr": 0.01, "crop": 96}))
    cfg = parse_args(["--config", str(conf), "--steps", "9", "--resume", "--init-weights", "w.safetensors"])
    assert cfg.sources == ["synthetic:10"] and cfg.steps == 9 and cfg.lr == 0.01 and cfg.crop == 96
    assert cfg.resume is True and cfg.init_weights == "w.safetensors"
    cfg = parse_args(["--sources", "masks:a", "coco:b.json:2", "--val-fraction", "0.2"])
    assert cfg.sources == ["masks:a", "coco:b.json:2"] and cfg.val_fraction == 0.2 and cfg.resume is False
    with pytest.raises(SystemExit):
        parse_args(["--steps", "3"])  # no data


def test_unknown_source_kind() -> None:
    with pytest.raises(ValueError, match="unknown data source kind 'pascal'"):
        trainer.open_source("pascal:/data")


def test_cli(tmp_path: Path) -> None:
    out = tmp_path / "cli_run"
    r = subprocess.run([sys.executable, "-m", "train", "--sources", "synthetic:4", "--steps", "2", "--crop", "64",
                        "--batch-size", "2", "--workers", "0", "--val-examples", "2", "--log-every", "1",
                        "--out", str(out)], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 2 and summary["stopped"] is False
    assert [int(row["step"]) for row in _log(out)] == [1, 2]
    assert load_weights(out / "weights.safetensors")[1]["steps"] == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_cpu_processes(tmp_path: Path) -> None:
    out = tmp_path / "ddp_run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
           "-m", "train", "--sources", "synthetic:6", "--steps", "3", "--crop", "64", "--batch-size", "2",
           "--workers", "0", "--val-examples", "2", "--log-every", "1", "--out", str(out)]
    r = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    summaries = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 2 and all(s["steps"] == 3 for s in summaries)  # both ranks finished
    assert [int(row["step"]) for row in _log(out)] == [1, 2, 3]  # only rank 0 writes the log
    state, info = load_weights(out / "weights.safetensors")
    assert info["steps"] == 3
    assert not any(k.startswith("module.") for k in state)  # the plain net, not the DDP wrapper


# ---- fine-tuning without forgetting: frozen BatchNorm statistics, anchor to the start, replayed data ----

def _start_weights(tmp_path: Path) -> Path:
    from model.weights import save_weights

    torch.manual_seed(3)
    path = tmp_path / "start.safetensors"
    save_weights(PointerSegNet(pretrained_backbone=False), path)
    return path


def _bn_stats(state: dict) -> dict:
    return {k: v for k, v in state.items() if k.endswith(("running_mean", "running_var"))}


@pytest.mark.parametrize("freeze_bn", [True, False])
def test_freeze_bn_keeps_the_start_statistics(tmp_path: Path, freeze_bn: bool) -> None:
    start = _start_weights(tmp_path)
    train(_cfg(tmp_path / "run", steps=2, init_weights=str(start), freeze_bn=freeze_bn))
    after, _ = load_weights(tmp_path / "run" / "weights.safetensors")
    before, _ = load_weights(start)
    stats_before, stats_after = _bn_stats(before), _bn_stats(after)
    assert stats_before and stats_before.keys() == stats_after.keys()
    unchanged = all(torch.equal(stats_before[k], stats_after[k]) for k in stats_before)
    assert unchanged == freeze_bn
    assert not torch.equal(before["head.weight"], after["head.weight"])  # the weights themselves still learn


def test_anchor_keeps_the_weights_near_the_start(tmp_path: Path) -> None:
    start = _start_weights(tmp_path)
    before, _ = load_weights(start)

    def moved(anchor: float, name: str) -> float:
        train(_cfg(tmp_path / name, steps=4, lr=1e-2, init_weights=str(start), anchor=anchor))
        after, _ = load_weights(tmp_path / name / "weights.safetensors")
        return sum(float((after[k] - before[k]).float().norm()) for k in before if k.endswith("weight"))

    free, anchored = moved(0.0, "free"), moved(90.0, "anchored")  # lr * anchor = 0.9: most of each step undone
    assert anchored < 0.5 * free


def test_replay_sources_are_trained_on_and_bad_ones_are_refused(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "photos"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    scenes = __import__("train.synthetic", fromlist=["SyntheticScenes"]).SyntheticScenes(12, size=(64, 64), seed=2)
    import cv2
    for i in range(12):
        cv2.imwrite(str(folder / "images" / f"p{i}.png"), scenes[i].image[..., ::-1])
        cv2.imwrite(str(folder / "masks" / f"p{i}.png"), scenes[i].segments[0].astype(np.uint8) * 255)
    seen = {}
    real = trainer.MixedExamples

    class Recording(real):
        def __init__(self, sources, cfg, seed, start_step=0):
            seen["sizes"] = [len(r) for r, _, _ in sources]
            super().__init__(sources, cfg, seed)

    monkeypatch.setattr(trainer, "MixedExamples", Recording)
    train(_cfg(tmp_path / "run", steps=1, replay=[f"masks:{folder}:0.5"]))
    held_out = sum(trainer._is_val(f"p{i}", TrainConfig.val_fraction) for i in range(12))
    # The replayed folder is a training source, minus the files the default split holds out.
    assert seen["sizes"][1:] == [12 - held_out]
    cfg = parse_args(["--sources", "synthetic:8", "--replay", f"masks:{folder}", "synthetic:4:0.2",
                      "--freeze-bn", "--anchor", "5"])
    assert cfg.replay == [f"masks:{folder}", "synthetic:4:0.2"] and cfg.freeze_bn and cfg.anchor == 5.0


def _first_click_batch_and_prediction():
    """Four first-click examples of synthetic scenes, an untrained net, and its thresholded prediction."""
    from train.sampling import SamplingConfig, make_example
    from train.synthetic import SyntheticScenes

    scenes = SyntheticScenes(6, size=(96, 96), seed=3)
    rng = np.random.default_rng(0)
    examples = [ex for ex in (make_example(scenes[i], rng, SamplingConfig(size=64, p_correction=0.0), True)
                              for i in range(6)) if ex is not None][:4]
    batch = trainer._collate(examples)
    torch.manual_seed(0)
    net = PointerSegNet(pretrained_backbone=False)
    net.eval()
    with torch.no_grad():
        logits, _ = net(batch["image"], batch["pointer"], batch["roi"])
    pred = ((logits > 0) & (batch["roi"] > 0.5))[:, 0].numpy()
    return batch, net, pred


def test_simulated_corrections_click_on_the_nets_own_errors() -> None:
    """Iterative training: each round adds the protocol's click on the prediction's larger error, with the
    right sign, and feeds the prediction back as the previous mask; the target and the image stay."""
    batch, net, pred = _first_click_batch_and_prediction()
    out = trainer.simulate_corrections(net, batch, rounds=1)
    assert torch.equal(out["target"], batch["target"]) and torch.equal(out["image"], batch["image"])
    target = batch["target"][:, 0].numpy() > 0.5
    allowed = (batch["valid"] * batch["roi"])[:, 0].numpy() > 0.5
    changed = 0
    for i in range(len(pred)):
        added_pos = ((out["pointer"][i, 0] > 0.5) & ~(batch["pointer"][i, 0] > 0.5)).numpy()
        added_neg = ((out["pointer"][i, 1] > 0.5) & ~(batch["pointer"][i, 1] > 0.5)).numpy()
        missed, wrong = target[i] & ~pred[i] & allowed[i], pred[i] & ~target[i] & allowed[i]
        if not (missed.any() or wrong.any()):
            assert not added_pos.any() and not added_neg.any()
            continue
        changed += 1
        assert added_pos.any() != added_neg.any()  # exactly one new click
        disk, error = (added_pos, missed) if added_pos.any() else (added_neg, wrong)
        ys, xs = np.nonzero(disk)
        assert error[int(round(ys.mean())), int(round(xs.mean()))]  # centred on an error pixel of that sign
        assert np.array_equal(out["pointer"][i, 2].numpy() > 0.5, pred[i])
    assert changed > 0


def test_iterative_training_runs(tmp_path: Path) -> None:
    summary = train(_cfg(tmp_path / "run", steps=2, iterative=1.0, iterative_rounds=2))
    assert summary["steps"] == 2
    assert json.loads((tmp_path / "run" / "config.json").read_text())["iterative"] == 1.0


def test_normalized_focal_loss_puts_the_gradient_on_the_wrong_pixels() -> None:
    """`--loss nfl`: a confident mistake on one pixel among many right ones gets far more of the gradient than under
    BCE, right pixels get less, ignored (invalid) pixels change nothing, and a perfect mask costs almost nothing."""
    import torch.nn.functional as F

    target = torch.zeros(1, 1, 16, 16)
    target[..., 4:12, 4:12] = 1
    valid = torch.ones_like(target)
    right = (target * 2 - 1) * 6
    assert trainer.normalized_focal_loss(right, target, valid) < 0.01
    assert trainer.normalized_focal_loss(torch.zeros_like(right), target, valid) > 0.3

    wrong = right.clone()
    wrong[0, 0, 8, 8] = -6
    nfl_in = wrong.clone().requires_grad_()
    trainer.normalized_focal_loss(nfl_in, target, valid).backward()
    bce_in = wrong.clone().requires_grad_()
    F.binary_cross_entropy_with_logits(bce_in, target).backward()
    assert abs(nfl_in.grad[0, 0, 8, 8]) > 10 * abs(bce_in.grad[0, 0, 8, 8])
    assert abs(nfl_in.grad[0, 0, 0, 0]) < abs(bce_in.grad[0, 0, 0, 0])

    valid_masked = valid.clone()
    valid_masked[..., :2, :] = 0
    noisy = wrong.clone()
    noisy[..., :2, :] = torch.randn(2, 16) * 10
    assert torch.isclose(trainer.normalized_focal_loss(noisy, target, valid_masked),
                         trainer.normalized_focal_loss(wrong, target, valid_masked))


def test_training_with_the_normalized_focal_loss_and_a_bad_loss_name(tmp_path: Path) -> None:
    summary = train(_cfg(tmp_path / "run", steps=2, loss="nfl"))
    assert summary["steps"] == 2 and np.isfinite([float(r["loss"]) for r in _log(tmp_path / "run")]).all()
    assert parse_args(["--sources", "synthetic:8", "--loss", "nfl"]).loss == "nfl"
    with pytest.raises(ValueError, match="unknown --loss"):
        train(_cfg(tmp_path / "bad", loss="focal"))


def test_boundary_weight_puts_more_loss_on_outline_mistakes_than_interior_ones(tmp_path: Path) -> None:
    """`--boundary-weight`: the same one-pixel mistake costs more on the target's outline than deep inside it,
    and a run with it trains; it refuses the focal loss, which it does not apply to."""
    target = torch.zeros(1, 1, 32, 32)
    target[..., 8:24, 8:24] = 1
    valid = torch.ones_like(target)
    band = trainer.boundary_band(target, 2)
    assert band[0, 0, 8, 16] == 1 and band[0, 0, 16, 16] == 0 and band[0, 0, 0, 0] == 0
    right = (target * 2 - 1) * 6
    score = torch.zeros(1)

    def loss_with_mistake_at(y: int, x: int, weight: float) -> float:
        logits = right.clone()
        logits[0, 0, y, x] = -logits[0, 0, y, x]
        return float(trainer.segmentation_loss(logits, score, target, valid, "bce", weight, 2)[0])

    assert loss_with_mistake_at(8, 16, 0.0) == pytest.approx(loss_with_mistake_at(16, 16, 0.0))
    assert loss_with_mistake_at(8, 16, 4.0) > loss_with_mistake_at(16, 16, 4.0) + 0.01
    summary = train(_cfg(tmp_path / "run", steps=2, boundary_weight=2.0))
    assert summary["steps"] == 2 and np.isfinite([float(r["loss"]) for r in _log(tmp_path / "run")]).all()
    with pytest.raises(ValueError, match="boundary"):
        train(_cfg(tmp_path / "bad", loss="nfl", boundary_weight=2.0))


def test_max_minutes_ends_the_run_on_time_annealed_and_a_resume_keeps_the_clock(tmp_path: Path) -> None:
    # A lent accelerator's time is fixed: the run must end when the budget is spent, with the learning rate
    # already decayed (the cosine runs on time), leave weights, and not restart the clock on resume.
    out = tmp_path / "run"
    summary = train(_cfg(out, steps=100000, max_minutes=0.03, ckpt_every=1000, log_every=1000))
    assert summary["out_of_time"] and not summary["stopped"]
    assert 1 <= summary["steps"] < 100000
    assert summary["seconds"] < 30
    state, info = load_weights(out / "weights.safetensors")
    assert info["steps"] == summary["steps"]
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == summary["steps"] and ckpt["elapsed"] >= 0.03 * 60
    last = _log(out)[-1]
    assert int(last["step"]) == summary["steps"]
    assert float(last["lr"]) < 0.1 * 1e-3  # annealed: the last steps ran at under a tenth of the peak

    again = train(_cfg(out, steps=100000, max_minutes=0.03, resume=True))
    assert again["out_of_time"] and again["steps"] == summary["steps"]


def test_max_minutes_schedule_follows_the_clock_and_a_negative_budget_is_refused(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, steps=1000, warmup=0, lr=1.0, max_minutes=1.0)
    assert trainer._lr_at(0, cfg, 0.0) == pytest.approx(1.0)
    assert trainer._lr_at(0, cfg, 30.0) == pytest.approx(0.5)   # half the budget: half the peak, whatever the step
    assert trainer._lr_at(500, cfg, 0.0) == pytest.approx(0.5)  # half the steps, too: whichever comes first
    assert trainer._lr_at(10, cfg, 60.0) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="max-minutes"):
        train(_cfg(tmp_path / "bad", max_minutes=-1.0))


def test_simulated_refinement_round_feeds_the_mask_back_without_a_click() -> None:
    """self_refine: a round that adds no click leaves the click channels as they were and puts the net's own
    prediction in the previous-mask channel, as the Segmenter's first-click refinement does at inference."""
    batch, net, pred = _first_click_batch_and_prediction()
    assert pred.any()
    out = trainer.simulate_corrections(net, batch, rounds=1, add_clicks=[False])
    assert torch.equal(out["pointer"][:, :2], batch["pointer"][:, :2])
    assert np.array_equal(out["pointer"][:, 2].numpy() > 0.5, pred)
    with pytest.raises(ValueError, match="one entry per round"):
        trainer.simulate_corrections(net, batch, rounds=2, add_clicks=[False])
    assert trainer.TrainConfig(sources=["synthetic:4"], self_refine=0.5).self_refine == 0.5


def test_training_with_a_loader_worker_starts(tmp_path: Path) -> None:
    """With --workers 1 the trainer hung before its first step. Building the validation examples
    (photos, copy-paste scenes) had run OpenCV's thread pool in the parent, and the forked worker's
    cv2.setNumThreads waited forever on that pool's lock. A child process with a time limit, so a hang fails the
    test instead of stalling the suite."""
    folder = tmp_path / "photos"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(30):
        image = cv2.GaussianBlur(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), (9, 9), 0)
        mask = np.zeros((480, 640), np.uint8)
        cv2.circle(mask, (320, 240), 50 + 5 * i, 255, -1)
        cv2.imwrite(str(folder / "images" / f"obj{i}.jpg"), image)
        cv2.imwrite(str(folder / "masks" / f"obj{i}.png"), mask)
    script = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from train.trainer import TrainConfig, train
print(train(TrainConfig(sources=["masks:{folder}", "copypaste:{folder}"], out={str(tmp_path / "run")!r}, steps=2,
                        batch_size=2, crop=448, val_every=1000, val_examples=8, workers=1, threads=1)))
"""
    try:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=150,
                              env=_env())
    except subprocess.TimeoutExpired:
        pytest.fail("training with a loader worker did not finish 2 steps in 150 s (hung)")
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "run" / "weights.safetensors").is_file()


def test_a_pause_neither_ends_a_leg_nor_counts_as_training_time(tmp_path: Path, monkeypatch) -> None:
    """A laptop suspended (or a run stopped with SIGSTOP) for an hour in the middle of a 1-minute leg: the leg goes
    on to its steps when the run wakes, and the checkpoint's training clock leaves the hour out."""
    offset = [0.0]
    real_time = time.time
    calls = [0]
    real_loss = trainer.segmentation_loss

    def loss_then_sleep(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 5:
            offset[0] += 3600.0  # the machine sleeps during the fifth step
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(trainer, "time", types.SimpleNamespace(time=lambda: real_time() + offset[0]))
    monkeypatch.setattr(trainer, "segmentation_loss", loss_then_sleep)
    summary = train(_cfg(tmp_path, steps=8, leg_minutes=1.0))
    assert summary["steps"] == 8 and not summary["stopped"]
    assert summary["paused_s"] > 3000
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["elapsed"] < 60


def test_the_training_clock_counts_slow_steps_but_not_pauses() -> None:
    t = [0.0]
    clock = trainer.TrainingClock(100.0, now=lambda: t[0])
    for dt in (3, 3, 3, 30, 3):  # a step ten times slower (a loaded machine) still counts
        t[0] += dt
        clock.tick()
    assert clock.counted == pytest.approx(142.0)
    t[0] += 2700  # a 45-minute pause counts as one typical step
    assert clock.read() == pytest.approx(145.0)
    clock.tick()
    assert clock.counted == pytest.approx(145.0) and clock.paused == pytest.approx(2697.0)
