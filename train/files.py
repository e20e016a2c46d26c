"""File helpers shared by evaluation and fine-tuning (no torch, no numpy: the GUI imports fine-tuning)."""
from __future__ import annotations

import hashlib
import os

PathLike = str | os.PathLike


def sha256_file(path: PathLike) -> str:
    """The SHA-256 of a file, read in 1 MiB chunks (weights files are tens of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
