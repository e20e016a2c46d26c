"""Saving and loading the net's weights as safetensors (no pickle, so a weights file cannot run code)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .net import ARCH_NAME, PointerSegNet


class WeightsError(ValueError):
    """A weights file is missing, unreadable, or does not fit the net; the message names the file."""


def save_weights(net: PointerSegNet, path: str | Path, metadata: dict | None = None) -> None:
    """Write the net's state atomically (temp file + rename) with its architecture name and `metadata`."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    meta = {"arch": ARCH_NAME, "info": json.dumps(metadata or {})}
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    os.replace(tmp, path)


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict, metadata) from a safetensors file, or WeightsError saying what is wrong."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"weights file {path} is corrupt or truncated ({exc})") from exc
    arch = meta.get("arch")
    if arch != ARCH_NAME:
        raise WeightsError(f"weights file {path} is for architecture {arch!r}, this net is {ARCH_NAME!r}")
    try:
        info = json.loads(meta.get("info", "{}"))
    except json.JSONDecodeError:
        info = {}
    return state, info


def load_into(net: PointerSegNet, path: str | Path) -> dict:
    """Load a weights file into `net`; WeightsError on missing/extra tensors or wrong shapes. Returns metadata."""
    state, info = load_weights(path)
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
