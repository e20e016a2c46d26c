"""`python -m train average W1 W2 ... --out W.safetensors`: the uniform average of several weights of one run
(stochastic weight averaging, a "model soup"). Snapshots of a run taken a few hundred steps apart sit in the same
basin; their average is usually flatter and better on unseen data than any one of them, and it removes the luck
of picking the one snapshot that happened to score best on a small held-out set.

Inputs are weights files (.safetensors) or trainer checkpoints (.pt, their "net" state). Float tensors are
averaged; integer ones (BatchNorm's num_batches_tracked) are taken from the first input. BatchNorm statistics
are averaged too: right for runs trained with --freeze-bn, where they do not move; for others, re-estimate
them before trusting the result."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import torch

from model.net import PointerSegNet
from model.weights import WeightsError, backbone_of_state, load_weights, save_weights


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The net's state dict from a weights file or a trainer checkpoint; WeightsError naming the file if not."""
    path = Path(path)
    if path.suffix == ".pt":
        if not path.is_file():
            raise WeightsError(f"checkpoint not found: {path}")
        try:
            ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many kinds for a broken pickle/zip
            raise WeightsError(f"checkpoint {path} is corrupt or not a trainer checkpoint ({exc})") from exc
        if not isinstance(ckpt, dict) or not isinstance(ckpt.get("net"), dict):
            raise WeightsError(f"checkpoint {path} has no 'net' state: not a trainer checkpoint")
        return ckpt["net"]
    return load_weights(path)[0]


def average_states(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The uniform average of state dicts with the same keys and shapes (ValueError naming the first mismatch)."""
    if not states:
        raise ValueError("nothing to average")
    first = states[0]
    for k, s in enumerate(states[1:], 2):
        if set(s) != set(first):
            diff = sorted(set(s) ^ set(first))
            raise ValueError(f"input {k} has other tensors than input 1 (e.g. {diff[0]})")
        for name, t in s.items():
            if t.shape != first[name].shape:
                raise ValueError(f"input {k}: {name} has shape {tuple(t.shape)}, input 1 {tuple(first[name].shape)}")
    out = {}
    for name, t in first.items():
        if t.is_floating_point():
            out[name] = torch.stack([s[name].float() for s in states]).mean(0).to(t.dtype)
        else:
            out[name] = t.clone()
    return out


def average_weights(paths: Sequence[str | Path], out: str | Path) -> PointerSegNet:
    """Average the weights in `paths` into a net, save it to `out` (safetensors, with the inputs named in its
    metadata) and return the net."""
    state = average_states([load_state(p) for p in paths])
    net = PointerSegNet(pretrained_backbone=False, backbone=backbone_of_state(state))
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsError(f"the averaged weights do not fit the net ({exc})") from exc
    save_weights(net, out, {"averaged_from": [str(p) for p in paths]})
    return net


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train average", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="weights (.safetensors) or trainer checkpoints (.pt)")
    p.add_argument("--out", required=True, help="where to write the averaged .safetensors")
    a = p.parse_args(argv)
    try:
        average_weights(a.inputs, a.out)
    except (WeightsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {a.out}: the average of {len(a.inputs)} weights")
    return 0


if __name__ == "__main__":
    sys.exit(main())
