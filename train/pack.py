"""`python -m train pack`: a compact copy of training folders for a lent accelerator.

A device run gets only the working tree (64 MiB in all, tools/device_train.sh), not `../shared/data`. So the
training folders are copied with their images shrunk to the training resolution (long side <= `--long-side`,
JPEG) and their masks / label maps resized with nearest neighbour (label values, 128 = ignore included, stay
exact). File stems are kept, so the trainer's held-out split by file name (`_is_val`) is the same as on the
originals, and the held-out files are left out of the copy altogether (they stay for measuring here).

    python -m train pack coco_mval_train camvid/train --data-root ../shared/data --out .devdata
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from .readers import DataError, _paired_names, read_image_rgb, read_label_png
from .trainer import TrainConfig, _is_val

LABEL_DIRS = ("masks", "labels")


def _shrink(h: int, w: int, long_side: int) -> tuple[int, int] | None:
    s = long_side / max(h, w)
    return None if s >= 1 else (max(1, round(w * s)), max(1, round(h * s)))


def pack_folder(src: Path, dst: Path, long_side: int = 448, quality: int = 90,
                val_fraction: float = TrainConfig.val_fraction) -> dict:
    """Copy one `images/` + `masks/` (or `labels/`) folder, training split only; returns counts and bytes."""
    if "grabcut" in src.as_posix().lower():
        raise DataError(f"{src}: the GrabCut benchmark is never trained on, so it is never packed")
    label_dir = next((d for d in LABEL_DIRS if (src / d).is_dir()), None)
    if label_dir is None:
        raise DataError(f"{src}: neither masks/ nor labels/ found: not a training folder")
    names, images = _paired_names(src, label_dir)
    (dst / "images").mkdir(parents=True, exist_ok=True)
    (dst / label_dir).mkdir(parents=True, exist_ok=True)
    kept = held_out = 0
    size = 0
    for name in names:
        if _is_val(name, val_fraction):
            held_out += 1
            continue
        image = read_image_rgb(images[name])
        label = read_label_png(src / label_dir / f"{name}.png")
        if label.shape[:2] != image.shape[:2]:
            raise DataError(f"{src / label_dir / name}.png: size differs from its image")
        new = _shrink(*image.shape[:2], long_side)
        if new is not None:
            image = cv2.resize(image, new, interpolation=cv2.INTER_AREA)
            label = cv2.resize(label, new, interpolation=cv2.INTER_NEAREST)
        ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        ok2, png = cv2.imencode(".png", np.ascontiguousarray(label))
        if not (ok and ok2):
            raise DataError(f"{images[name]}: could not be encoded")
        (dst / "images" / f"{name}.jpg").write_bytes(jpg.tobytes())
        (dst / label_dir / f"{name}.png").write_bytes(png.tobytes())
        size += len(jpg) + len(png)
        kept += 1
    return {"folder": str(src), "kept": kept, "held_out": held_out, "bytes": size}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train pack", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", help="training folders, relative to --data-root")
    p.add_argument("--data-root", default="../shared/data")
    p.add_argument("--out", default=".devdata")
    p.add_argument("--long-side", type=int, default=448)
    p.add_argument("--quality", type=int, default=90, help="JPEG quality of the images")
    a = p.parse_args(argv)
    total = 0
    try:
        for folder in a.folders:
            r = pack_folder(Path(a.data_root) / folder, Path(a.out) / folder, a.long_side, a.quality)
            total += r["bytes"]
            print(f"{folder}: {r['kept']} files packed, {r['held_out']} held out (left here), "
                  f"{r['bytes'] / 2**20:.1f} MiB")
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"total {total / 2**20:.1f} MiB in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
