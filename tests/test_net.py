"""The pointer/ROI net (model.net): the attention merge is multiplicative for the pointer and additive for the
ROI, it sits on the stem output, and the outputs have the documented shapes."""
from __future__ import annotations

import pytest
import torch

from model.net import POINTER_CHANNELS, STEM_CHANNELS, AttentionMerge, PointerSegNet


def _inputs(b: int = 2, h: int = 32, w: int = 48, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(b, STEM_CHANNELS, h // 2, w // 2, generator=g)
    pointer = (torch.rand(b, POINTER_CHANNELS, h, w, generator=g) > 0.8).float()
    roi = (torch.rand(b, 1, h, w, generator=g) > 0.3).float()
    return features, pointer, roi


@pytest.fixture()
def merge() -> AttentionMerge:
    torch.manual_seed(0)
    m = AttentionMerge()
    with torch.no_grad():  # non-trivial weights, far from the identity start
        for conv in (m.pointer_conv, m.roi_conv):
            conv.weight.normal_(0, 0.5)
            conv.bias.normal_(0, 0.5)
    return m.eval()


@torch.no_grad()
def test_pointer_attention_multiplies_the_features(merge: AttentionMerge) -> None:
    merge.roi_conv.weight.zero_()
    merge.roi_conv.bias.zero_()
    features, pointer, roi = _inputs()
    out = merge(features, pointer, roi)
    a_p = merge.pointer_conv(pointer)
    assert a_p.shape == features.shape
    assert torch.equal(out, features * a_p)
    assert not torch.allclose(out, features + a_p)  # additive would be another net
    # Multiplicative: twice the features, twice the output (an additive pointer term would break this).
    assert torch.allclose(merge(2 * features, pointer, roi), 2 * out, atol=1e-6)
    # Zero features are zero whatever the pointer says.
    assert torch.equal(merge(torch.zeros_like(features), pointer, roi), torch.zeros_like(features))


@torch.no_grad()
def test_roi_attention_adds_to_the_features(merge: AttentionMerge) -> None:
    merge.pointer_conv.weight.zero_()
    merge.pointer_conv.bias.fill_(1.0)
    features, pointer, roi = _inputs()
    out = merge(features, pointer, roi)
    a_r = merge.roi_conv(roi)
    assert a_r.shape == features.shape
    assert torch.allclose(out, features + a_r, atol=1e-6)
    # Additive: the ROI term does not scale with the features.
    assert torch.allclose(merge(2 * features, pointer, roi) - out, features, atol=1e-5)


@torch.no_grad()
def test_pointer_and_roi_both_reach_the_output(merge: AttentionMerge) -> None:
    features, pointer, roi = _inputs()
    out = merge(features, pointer, roi)
    assert not torch.allclose(out, merge(features, torch.zeros_like(pointer), roi))
    assert not torch.allclose(out, merge(features, pointer, torch.zeros_like(roi)))
    # Both maps are at the features' resolution and local: a change at one corner of the ROI leaves the far
    # corner untouched.
    roi2 = roi.clone()
    roi2[..., :4, :4] = 1 - roi2[..., :4, :4]
    diff = (merge(features, pointer, roi2) - out).abs().amax((0, 1))
    assert diff[:3, :3].max() > 0 and diff[4:, 4:].max() == 0


def test_initial_merge_is_close_to_identity() -> None:
    """At step 0 the pretrained encoder sees (almost) its usual stem features: A_p ~ 1, A_r ~ 0 for empty maps."""
    torch.manual_seed(0)
    m = AttentionMerge()
    features, _, _ = _inputs()
    h, w = features.shape[-2] * 2, features.shape[-1] * 2
    with torch.no_grad():
        out = m(features, torch.zeros(2, POINTER_CHANNELS, h, w), torch.zeros(2, 1, h, w))
    assert torch.equal(out, features)


@pytest.fixture(scope="module")
def net() -> PointerSegNet:
    torch.manual_seed(0)
    return PointerSegNet(pretrained_backbone=False).eval()


@pytest.mark.parametrize("b, h, w", [(2, 64, 96), (1, 32, 32)])
def test_output_shapes(net: PointerSegNet, b: int, h: int, w: int) -> None:
    with torch.no_grad():
        logits, score = net(torch.randn(b, 3, h, w), torch.zeros(b, POINTER_CHANNELS, h, w), torch.ones(b, 1, h, w))
    assert logits.shape == (b, 1, h, w)
    assert score.shape == (b,)
    assert torch.isfinite(logits).all() and torch.isfinite(score).all()


def test_merge_is_applied_to_the_stem_output(net: PointerSegNet) -> None:
    seen = {}
    image = torch.randn(1, 3, 64, 64)
    pointer = torch.zeros(1, POINTER_CHANNELS, 64, 64)
    pointer[0, 0, 28:36, 28:36] = 1
    roi = torch.ones(1, 1, 64, 64)
    hooks = [
        net.merge.register_forward_hook(lambda m, args, out: seen.update(merge_in=args, merge_out=out)),
        net.blocks[0].register_forward_pre_hook(lambda m, args: seen.update(block_in=args[0])),
    ]
    try:
        with torch.no_grad():
            net(image, pointer, roi)
            stem = net.stem(image)
    finally:
        for h in hooks:
            h.remove()
    features, p, r = seen["merge_in"]
    assert torch.equal(features, stem)             # the merge gets the stem's features ...
    assert torch.equal(p, pointer) and torch.equal(r, roi)  # ... and the raw pointer and ROI maps
    assert torch.equal(seen["block_in"], seen["merge_out"])  # ... and the encoder continues from the merge
    assert not torch.equal(seen["merge_out"], stem)


def test_pointer_changes_the_prediction(net: PointerSegNet) -> None:
    image = torch.randn(1, 3, 64, 64)
    roi = torch.ones(1, 1, 64, 64)
    p1 = torch.zeros(1, POINTER_CHANNELS, 64, 64)
    p2 = p1.clone()
    p1[0, 0, 5:12, 5:12] = 1
    p2[0, 0, 50:57, 50:57] = 1
    with torch.no_grad():
        a, _ = net(image, p1, roi)
        b, _ = net(image, p2, roi)
    assert not torch.allclose(a, b)


def test_gradients_reach_every_parameter() -> None:
    """Every parameter gets a gradient from the training loss (DistributedDataParallel needs it, and an unused
    layer would be dead weight in the file)."""
    from train.trainer import segmentation_loss

    torch.manual_seed(1)
    net = PointerSegNet(pretrained_backbone=False).train()
    pointer = torch.zeros(2, POINTER_CHANNELS, 64, 64)
    pointer[:, 0, 30:34, 30:34] = 1
    target = torch.zeros(2, 1, 64, 64)
    target[:, :, 20:44, 20:44] = 1
    logits, score = net(torch.randn(2, 3, 64, 64), pointer, torch.ones(2, 1, 64, 64))
    loss, _ = segmentation_loss(logits, score, target, torch.ones_like(target))
    loss.backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
