"""Larger encoders (EfficientNet-Lite1/Lite2) as options of the same net: a weights file names its encoder, every
loader builds the net it names, and a file never loads into a net of another encoder."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from model import Segmenter, WeightsError
from model.net import BACKBONES, POINTER_CHANNELS, PointerSegNet
from model.weights import backbone_of, backbone_of_state, load_into, load_net, save_weights
from train.average import average_weights
from train.trainer import TrainConfig, train


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_each_backbone_gives_a_full_size_mask_and_a_score(name: str) -> None:
    torch.manual_seed(0)
    net = PointerSegNet(pretrained_backbone=False, backbone=name).eval()
    image = torch.randn(2, 3, 96, 64)
    pointer = torch.zeros(2, POINTER_CHANNELS, 96, 64)
    pointer[:, 0, 40, 30] = 1
    with torch.no_grad():
        logits, score = net(image, pointer, torch.ones(2, 1, 96, 64))
    assert logits.shape == (2, 1, 96, 64) and score.shape == (2,)
    assert net.arch_name.endswith(f"{name}-v1")
    assert backbone_of_state(net.state_dict()) == name


def test_lite1_weights_load_as_lite1_everywhere(tmp_path: Path) -> None:
    torch.manual_seed(1)
    lite1 = PointerSegNet(pretrained_backbone=False, backbone="lite1")
    path = tmp_path / "lite1.safetensors"
    save_weights(lite1, path, {"note": "test"})
    assert backbone_of(path) == "lite1"
    net, info = load_net(path)
    assert net.backbone.name == "lite1" and info == {"note": "test"}
    for k, v in lite1.state_dict().items():
        assert torch.equal(net.state_dict()[k], v), k

    # A Lite0 net refuses the file with a message naming both encoders, and is left as it was.
    lite0 = PointerSegNet(pretrained_backbone=False)
    before = {k: v.clone() for k, v in lite0.state_dict().items()}
    with pytest.raises(WeightsError, match="lite1.*lite0"):
        load_into(lite0, path)
    assert all(torch.equal(before[k], v) for k, v in lite0.state_dict().items())

    # The Segmenter a user gets from the file (and from swapping weights in) answers a click inside the ROI.
    seg = Segmenter.from_pretrained(path, device="cpu", backend="torch")
    assert seg.net.backbone.name == "lite1"
    image = np.random.default_rng(0).integers(0, 255, (80, 120, 3), dtype=np.uint8)
    roi = np.zeros((80, 120), bool)
    roi[:, :60] = True
    pred = seg.predict(image, [(20, 40, True)], roi=roi)
    assert pred.mask.shape == (80, 120) and not pred.mask[~roi].any()
    seg_lite0 = Segmenter.random_init(backend="torch")
    seg_lite0.load_weights(path)
    assert seg_lite0.net.backbone.name == "lite1"

    # Averaging snapshots of a Lite1 run gives a Lite1 file.
    avg = tmp_path / "avg.safetensors"
    average_weights([path, path], avg)
    assert backbone_of(avg) == "lite1"


def test_unknown_arch_in_a_file_is_a_clear_error(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(1)}, str(path), metadata={"arch": "someone-elses-net"})
    with pytest.raises(WeightsError, match="someone-elses-net"):
        backbone_of(path)
    with pytest.raises(WeightsError, match="someone-elses-net"):
        Segmenter.from_pretrained(path, device="cpu")
    with pytest.raises(ValueError, match="unknown backbone"):
        PointerSegNet(pretrained_backbone=False, backbone="lite9")


def _cfg(out: Path, **kw) -> TrainConfig:
    base = dict(sources=["synthetic:8"], out=str(out), steps=2, batch_size=2, crop=64, lr=1e-3, warmup=1,
                val_every=1000, val_examples=2, ckpt_every=1, log_every=1, workers=0, seed=0, threads=1)
    base.update(kw)
    return TrainConfig(**base)


def test_training_keeps_the_encoder_of_its_start_and_refuses_a_mismatched_resume(tmp_path: Path) -> None:
    init = tmp_path / "init.safetensors"
    torch.manual_seed(2)
    save_weights(PointerSegNet(pretrained_backbone=False, backbone="lite1"), init)
    out = tmp_path / "run"
    train(_cfg(out, init_weights=str(init)))  # no --backbone: the start's own
    assert backbone_of(out / "weights.safetensors") == "lite1"

    # Resuming that run as a Lite0 run would silently start over; it is an error naming the fix instead.
    with pytest.raises(WeightsError, match="--backbone lite1"):
        train(_cfg(out, steps=3, resume=True, backbone="lite0"))
    # A start of another encoder than the one asked for is refused too.
    with pytest.raises(WeightsError, match="lite1"):
        train(_cfg(tmp_path / "run2", init_weights=str(init), backbone="lite2"))


def test_grown_lite1_answers_exactly_as_the_trained_lite0(tmp_path: Path) -> None:
    from train.grow import deepen, main as grow_main

    torch.manual_seed(4)
    lite0 = PointerSegNet(pretrained_backbone=False).eval()
    for m in lite0.modules():  # BatchNorm statistics as a trained net has them, not the identity of a fresh one
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.bias.data.uniform_(-0.2, 0.2)
    path = tmp_path / "lite0.safetensors"
    save_weights(lite0, path, {"steps": 7})
    out = tmp_path / "grown.safetensors"
    assert grow_main([str(path), "--backbone", "lite1", "--out", str(out)]) == 0
    grown, info = load_net(out)
    assert grown.backbone.name == "lite1" and info["steps"] == 7
    assert len(grown.blocks) > len(lite0.blocks)
    grown.eval()
    image = torch.randn(1, 3, 128, 96)
    pointer = torch.zeros(1, POINTER_CHANNELS, 128, 96)
    pointer[0, 0, 60:64, 40:44] = 1
    roi = torch.ones(1, 1, 128, 96)
    with torch.no_grad():
        a_logits, a_score = lite0(image, pointer, roi)
        b_logits, b_score = grown(image, pointer, roi)
    assert torch.allclose(a_logits, b_logits, atol=1e-5) and torch.allclose(a_score, b_score, atol=1e-5)
    # Lite2 widens the encoder: no copy keeps the function, so it is refused rather than silently changed.
    with pytest.raises(ValueError, match="widens"):
        deepen(lite0, "lite2")
    assert grow_main([str(path), "--backbone", "lite2", "--out", str(tmp_path / "x.safetensors")]) == 2
    assert not (tmp_path / "x.safetensors").exists()
