"""Saving and loading the net's weights as safetensors (no pickle, so a weights file cannot run code)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .net import ARCH_NAMES, BACKBONES, PointerSegNet


class WeightsError(ValueError):
    """A weights file is missing, unreadable, or does not fit the net; the message names the file."""


def save_weights(net: PointerSegNet, path: str | Path, metadata: dict | None = None) -> None:
    """Write the net's state atomically (temp file + rename) with its architecture name and `metadata`."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    meta = {"arch": net.arch_name, "info": json.dumps(metadata or {})}
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    os.replace(tmp, path)


def _header_arch(path: Path) -> tuple[str, dict]:
    """(architecture name, header metadata) of a weights file; WeightsError when it is missing, unreadable or
    for a net this tool does not have."""
    from safetensors import SafetensorError
    from safetensors.torch import safe_open

    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"weights file {path} is corrupt or truncated ({exc})") from exc
    found = meta.get("arch")
    if found not in ARCH_NAMES:
        raise WeightsError(f"weights file {path} is for architecture {found!r}, not one of this tool's nets "
                           f"({', '.join(sorted(ARCH_NAMES))})")
    return found, meta


def load_weights(path: str | Path, arch: str | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict, metadata) from a safetensors file, or WeightsError saying what is wrong. With `arch`, the file
    must be for that architecture."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    found, meta = _header_arch(path)
    if arch is not None and found != arch:
        raise WeightsError(f"weights file {path} is for architecture {found!r}, this net is {arch!r}")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"weights file {path} is corrupt or truncated ({exc})") from exc
    try:
        info = json.loads(meta.get("info", "{}"))
    except json.JSONDecodeError:
        info = {}
    return state, info


def load_into(net: PointerSegNet, path: str | Path) -> dict:
    """Load a weights file into `net`; WeightsError on missing/extra tensors or wrong shapes. Returns metadata."""
    state, info = load_weights(path, arch=net.arch_name)
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensors missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0]})")
        if wrong:
            parts.append(f"{len(wrong)} tensors of the wrong shape (e.g. {wrong[0]})")
        raise WeightsError(f"weights file {path} does not match the net: " + "; ".join(parts))
    net.load_state_dict(state)
    return info


def backbone_of(path: str | Path) -> str:
    """The encoder ("lite0", "lite1", ...) a weights file was trained with, read from its header alone."""
    return ARCH_NAMES[_header_arch(Path(path))[0]]


def load_net(path: str | Path, **net_kwargs) -> tuple[PointerSegNet, dict]:
    """(net, metadata): a net of the architecture the file names, with the file's weights in it."""
    net = PointerSegNet(pretrained_backbone=False, backbone=backbone_of(path), **net_kwargs)
    return net, load_into(net, path)


def backbone_of_state(state: dict[str, torch.Tensor]) -> str:
    """The encoder a bare state dict (a trainer checkpoint's "net") belongs to, from its block count and the
    decoder's input channels; WeightsError when it is none of them."""
    try:
        n_blocks = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
        channels = tuple(int(state[f"lateral.{i}.weight"].shape[1]) for i in range(5))
    except (ValueError, KeyError, IndexError) as exc:
        raise WeightsError(f"not the state of this tool's net ({exc})") from exc
    for name, b in BACKBONES.items():
        if b.skip_blocks[-1] == n_blocks - 1 and b.skip_channels == channels:
            return name
    raise WeightsError(f"not the state of this tool's net: {n_blocks} encoder blocks, decoder inputs {channels}")
