"""Which files are held out for validation, fixed by name.

Two rules live here:

* ``in_hash_split(name, fraction)``: the trainer's split by file-name hash (CRC-32), used by ``--val-fraction``
  runs and by ``train.evaluate --held-out``. The shipped weights were trained with it at 0.1, so its held-out
  COCO-MVal photos are photos those weights never saw.
* ``VAL_SPLIT`` (``train/val_split.json``): the validation split of every choice made on the net and of the
  shipping rule. It lists, by name, the COCO-MVal photos of the hash split above (never trained on by the shipped
  weights either, so old and new weights compare fairly), 360 salient-object photos and 40 BSDS scenes (chosen by
  the lowest SHA-1 score of their names, so the choice depends on the name alone). ``build_val_split`` made the
  file from ``../shared/data``; it is committed so the split stays the same even if the data folder grows.
  Nothing in it is ever trained on: ``held_out_names()`` is what the trainer's ``--exclude-val`` removes from
  every training list.
"""
from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

VAL_SPLIT = Path(__file__).with_name("val_split.json")
SALIENT_VAL = 360  # with COCO-MVal's ~50 held-out photos: >= 400 objects, enough to tell ~0.3 clicks apart
BSDS_VAL = 40


def in_hash_split(name: str, fraction: float) -> bool:
    """Stable split by name (CRC-32 of the name, per mille), so resumed and later runs hold out the same files."""
    return (zlib.crc32(name.encode()) % 1000) < fraction * 1000


def name_score(name: str) -> float:
    """A number in [0, 1) fixed by the name alone (SHA-1)."""
    return int.from_bytes(hashlib.sha1(name.encode("utf-8")).digest()[:8], "big") / 2.0 ** 64


def _lowest(names: list[str], n: int) -> list[str]:
    return sorted(sorted(names, key=name_score)[:n])


def build_val_split(data_root: str | Path) -> dict[str, list[str]]:
    """The split from the data folder: {"coco_mval_train": [...], "salient": [...], "bsds": [image ids]}."""
    root = Path(data_root)
    coco = sorted(p.stem for p in (root / "coco_mval_train" / "masks").glob("*.png"))
    salient = sorted(p.stem for p in (root / "salient" / "masks").glob("*.png"))
    bsds = sorted(p.stem for p in (root / "bsds" / "images").glob("*.jpg"))
    return {"coco_mval_train": [n for n in coco if in_hash_split(n, 0.1)],
            "salient": _lowest(salient, SALIENT_VAL),
            "bsds": _lowest(bsds, BSDS_VAL)}


def load_val_split(path: str | Path = VAL_SPLIT) -> dict[str, list[str]]:
    """The committed validation split: source folder name -> names (file stems; BSDS image ids)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return {k: list(v) for k, v in data["sources"].items()}


def held_out_names(path: str | Path = VAL_SPLIT) -> set[str]:
    """Every name in the validation split, whatever its source (the names do not collide across sources)."""
    return {n for names in load_val_split(path).values() for n in names}


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m train.splits",
                                description="Write the validation split file from a data folder.")
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--out", default=str(VAL_SPLIT))
    a = p.parse_args(argv)
    split = build_val_split(a.data)
    doc = {"about": "Validation split, fixed by name: never trained on (see train/splits.py).",
           "sources": split}
    Path(a.out).write_text(json.dumps(doc, indent=0) + "\n", encoding="utf-8")
    print({k: len(v) for k, v in split.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
