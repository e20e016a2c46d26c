"""Reader for COCO panoptic annotations (JSON + id-coded PNGs), as published by COCO and as the annotator exports."""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np

from train.readers import read_image_rgb
from train.sample import DataError, Sample


# The COCO panoptic id encoding, shared with the annotator (annotator.document imports these): keep it pure
# numpy / OpenCV, with no Qt and no torch.
def ids_to_rgb(labels: np.ndarray) -> np.ndarray:
    """HxW int ids -> HxWx3 uint8 RGB with id = R + 256 G + 256^2 B."""
    ids = np.asarray(labels).astype("<u4")  # little-endian bytes are R, G, B, (dropped) high byte
    rgba = ids.view(np.uint8).reshape(ids.shape + (4,))
    if ids.ndim != 2 or ids.size == 0:
        return np.ascontiguousarray(rgba[..., :3])
    return cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB)  # a SIMD copy: numpy's strided one takes seconds on a big scan


def rgb_to_ids(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> HxW int32 ids (id = R + 256 G + 256^2 B)."""
    rgb = rgb.astype(np.int32)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def decode_panoptic_png(path: str | Path) -> np.ndarray:
    """Read a COCO panoptic PNG (RGB, or RGBA with the alpha ignored) into an HxW int32 id map; DataError names
    the file if it is missing, unreadable or not 8-bit colour."""
    try:
        data = np.fromfile(str(path), np.uint8)  # fromfile + imdecode, not imread: non-ASCII paths work
    except OSError as e:
        raise DataError(f"{path}: cannot read the panoptic PNG ({e.strerror or e})") from None
    raw = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None  # imdecode asserts on empty input
    if raw is None:
        raise DataError(f"{path}: not a readable panoptic PNG (corrupt or unsupported format)")
    if raw.dtype != np.uint8 or raw.ndim != 3 or raw.shape[2] not in (3, 4):
        raise DataError(f"{path}: panoptic PNG must be 8-bit RGB, got dtype {raw.dtype} shape {raw.shape}")
    return rgb_to_ids(raw[:, :, 2::-1])  # OpenCV gives BGR(A)


def _load_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: malformed JSON ({e})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object at top level, got {type(data).__name__}")
    return data


def _check_relative(json_path: Path, what: str, name) -> None:
    """COCO file names are relative to their folder; an absolute one or '..' would read files elsewhere."""
    text = str(name)
    if not text.strip() or os.path.isabs(text) or ".." in Path(text.replace("\\", "/")).parts:
        raise DataError(f"{json_path}: {what} {text!r} must be a relative path inside its folder")


class CocoPanopticReader:
    """COCO panoptic data set: one Sample per entry of the JSON's "annotations".

    Non-crowd segments become Sample.segments; crowd segments and void pixels (id 0) go into Sample.ignore.
    png_dir defaults to the folder named like the JSON's stem next to it (official layout), else `panoptic/`;
    image_dir defaults to the JSON's "image_dir" key (relative to the JSON's folder), else `images/`.
    """

    def __init__(self, json_path: str | Path, png_dir: str | Path | None = None,
                 image_dir: str | Path | None = None) -> None:
        self.json_path = Path(json_path)
        data = _load_json(self.json_path)
        root = self.json_path.parent
        for key in ("annotations", "images"):
            if not isinstance(data.get(key), list):
                raise DataError(f"{self.json_path}: missing or invalid key '{key}' (expected a list)")

        if png_dir is None:
            candidates = [root / self.json_path.stem, root / "panoptic"]
            png_dir = next((c for c in candidates if c.is_dir()), None)
            if png_dir is None:
                raise DataError(f"{self.json_path}: no panoptic PNG folder found "
                                f"(looked for {', '.join(str(c) for c in candidates)})")
        if image_dir is None:
            image_dir = root / data["image_dir"] if isinstance(data.get("image_dir"), str) else root / "images"
        self.png_dir = Path(png_dir)
        self.image_dir = Path(image_dir)

        self.images: dict[int, dict] = {}
        for k, im in enumerate(data["images"]):
            if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
                raise DataError(f"{self.json_path}: images[{k}] lacks 'id' or 'file_name'")
            if im["id"] in self.images:
                raise DataError(f"{self.json_path}: image id {im['id']!r} is used twice (images[{k}])")
            _check_relative(self.json_path, f"images[{k}].file_name", im["file_name"])
            self.images[im["id"]] = im
        self.categories: dict[int, dict] = {}
        for k, c in enumerate(data.get("categories", [])):
            if not isinstance(c, dict) or "id" not in c:
                raise DataError(f"{self.json_path}: categories[{k}] lacks 'id'")
            self.categories[c["id"]] = c

        self.annotations: list[dict] = []
        for k, ann in enumerate(data["annotations"]):
            where = f"{self.json_path}: annotations[{k}]"
            if not isinstance(ann, dict):
                raise DataError(f"{where} is not an object")
            missing = [key for key in ("image_id", "file_name", "segments_info") if key not in ann]
            if missing:
                raise DataError(f"{where} lacks key(s) {', '.join(missing)}")
            if ann["image_id"] not in self.images:
                raise DataError(f"{where}: image_id {ann['image_id']!r} is not in 'images'")
            _check_relative(self.json_path, f"annotations[{k}].file_name", ann["file_name"])
            seen: set[int] = set()
            for j, s in enumerate(ann["segments_info"]):
                if not isinstance(s, dict) or "id" not in s or "category_id" not in s:
                    raise DataError(f"{where}.segments_info[{j}] lacks 'id' or 'category_id'")
                if s["id"] in seen:
                    raise DataError(f"{where}: segment id {s['id']} appears twice in segments_info")
                if s["id"] == 0:
                    raise DataError(f"{where}: segment id 0 is reserved for void pixels")
                if self.categories and s["category_id"] not in self.categories:
                    raise DataError(f"{where}: segment {s['id']} has unknown category_id {s['category_id']}")
                seen.add(s["id"])
            self.annotations.append(ann)
        self.names: list[str] = [Path(a["file_name"]).stem for a in self.annotations]

    def __len__(self) -> int:
        return len(self.annotations)

    def is_thing(self, category_id: int) -> bool:
        """True if the category is a countable object (COCO 'isthing'); unknown categories count as things."""
        return bool(self.categories.get(category_id, {}).get("isthing", 1))

    def __getitem__(self, i: int) -> Sample:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        ann = self.annotations[i]
        info = self.images[ann["image_id"]]
        image_path = self.image_dir / info["file_name"]
        png_path = self.png_dir / ann["file_name"]

        image = read_image_rgb(image_path)
        ids = decode_panoptic_png(png_path)
        if ids.shape != image.shape[:2]:
            raise DataError(f"{png_path}: PNG size {ids.shape[1]}x{ids.shape[0]} differs from image "
                            f"{image_path.name} size {image.shape[1]}x{image.shape[0]}")
        if (info.get("height"), info.get("width")) not in ((None, None), image.shape[:2]):
            raise DataError(f"{self.json_path}: image {info['file_name']} is {image.shape[1]}x{image.shape[0]} "
                            f"but the JSON says {info.get('width')}x{info.get('height')}")

        # One pass over the pixels: unique ids and, per pixel, the index of its id.
        uniq, inverse = np.unique(ids, return_inverse=True)
        inverse = inverse.reshape(ids.shape)
        by_id = {s["id"]: s for s in ann["segments_info"]}
        unknown = [int(u) for u in uniq if u != 0 and int(u) not in by_id]
        if unknown:
            raise DataError(f"{png_path}: segment ids {unknown} in the PNG are missing from segments_info "
                            f"of {self.json_path.name}")

        ignore = inverse == 0 if uniq[0] == 0 else np.zeros(ids.shape, bool)  # void pixels
        index = {int(u): k for k, u in enumerate(uniq)}
        segments: list[np.ndarray] = []
        category_ids: list[int] = []
        absent = [int(s["id"]) for s in ann["segments_info"] if int(s["id"]) not in index]
        if absent:
            # listed but not drawn: the JSON and the PNG do not belong together
            raise DataError(f"{png_path}: segments {absent[:10]} of {self.json_path.name} have no pixel in the PNG")
        for s in ann["segments_info"]:  # JSON order
            k = index[int(s["id"])]
            mask = inverse == k
            if s.get("iscrowd", 0):
                ignore |= mask  # a crowd region is not one segment: no loss or metric on it
            else:
                segments.append(mask)
                category_ids.append(int(s["category_id"]))
        return Sample(image=image, segments=segments, ignore=ignore, name=self.names[i], category_ids=category_ids)
