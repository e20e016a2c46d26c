"""`python -m train grow W.safetensors --backbone lite1 --out W1.safetensors`: a deeper net that computes exactly
what the trained one does, to keep training with more capacity instead of starting a larger encoder over from
ImageNet (Net2DeeperNet, Chen et al. 2016).

EfficientNet-Lite1 has Lite0's stages with the same channels, kernels and expansion, and one or two more blocks per
stage. Each stage of the grown net takes the trained stage's blocks in order; each extra block is a copy of the
stage's last block with its output BatchNorm's scale and shift set to zero. An extra block is a stride-1 residual
block (x + branch(x)), so it starts as the identity and the grown net's masks and scores are the trained net's; the
copy's statistics fit the features it sees, which matters under --freeze-bn. Lite2 widens the channels too, which
no copy preserves: it is refused.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

from model.net import BACKBONES, PointerSegNet
from model.weights import WeightsError, load_net, save_weights


def _stages(blocks: nn.ModuleList) -> list[list[nn.Module]]:
    """Consecutive blocks grouped into stages: a stage starts where the channel count changes."""
    stages: list[list[nn.Module]] = []
    for block in blocks:
        args = block._block_args
        if not stages or args.input_filters != args.output_filters:
            stages.append([])
        stages[-1].append(block)
    return stages


def deepen(net: PointerSegNet, backbone: str) -> PointerSegNet:
    """A `backbone` net equal in function to `net` (eval mode); ValueError when `backbone` is not `net`'s encoder
    with more blocks of the same shapes."""
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; one of {sorted(BACKBONES)}")
    grown = PointerSegNet(pretrained_backbone=False, backbone=backbone,
                          decoder_channels=net.head.in_channels)
    src, dst = _stages(net.blocks), _stages(grown.blocks)
    if len(src) != len(dst) or any(len(d) < len(s) for s, d in zip(src, dst)):
        raise ValueError(f"{backbone} is not {net.backbone.name} with more blocks per stage")
    with torch.no_grad():
        for s_stage, d_stage in zip(src, dst):
            for i, d_block in enumerate(d_stage):
                s_block = s_stage[min(i, len(s_stage) - 1)]
                s_state, d_state = s_block.state_dict(), d_block.state_dict()
                if {k: v.shape for k, v in s_state.items()} != {k: v.shape for k, v in d_state.items()}:
                    raise ValueError(f"{backbone} widens or reshapes the encoder ({net.backbone.name} -> "
                                     f"{backbone}): no copy keeps the trained function")
                d_block.load_state_dict(s_state)  # copies the values into the block's own tensors
                if i >= len(s_stage):
                    d_block._bn2.weight.zero_()
                    d_block._bn2.bias.zero_()
        own = grown.state_dict()
        rest = {k: v for k, v in net.state_dict().items() if not k.startswith("blocks.")}
        own.update(rest)
        grown.load_state_dict(own)
    return grown


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train grow", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights", help="trained weights (.safetensors)")
    p.add_argument("--backbone", default="lite1", help="the deeper encoder (default lite1)")
    p.add_argument("--out", required=True, help="where the grown weights go")
    a = p.parse_args(argv)
    try:
        net, info = load_net(a.weights)
        grown = deepen(net, a.backbone)
    except (WeightsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    save_weights(grown, a.out, {"grown_from": Path(a.weights).name, "backbone": a.backbone,
                                **{k: v for k, v in info.items() if k in ("steps", "sources", "crop")}})
    print(f"{a.out}: {a.backbone}, {sum(p.numel() for p in grown.parameters()) / 1e6:.2f} M parameters "
          f"(from {sum(p.numel() for p in net.parameters()) / 1e6:.2f} M)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
