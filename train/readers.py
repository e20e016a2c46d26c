"""Readers for folders of images with binary masks and for semantic label maps (CamVid style).

Each reader is a sequence of `Sample`s; images are read lazily, so a reader over thousands of files is cheap.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .sample import DataError, Sample

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")  # GIF: first frame


def read_image_rgb(path: str | Path) -> np.ndarray:
    """HxWx3 uint8 RGB (grey / alpha are converted), or DataError naming the file.

    The one image decoder of the project (the annotator wraps it too).
    """
    if not Path(path).is_file():
        raise DataError(f"{path}: image file not found")
    try:
        data = np.fromfile(str(path), np.uint8)  # fromfile + imdecode, not imread: non-ASCII paths work
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None  # imdecode asserts on an empty buffer
    if img is None or img.ndim != 3 or img.shape[0] == 0 or img.shape[1] == 0:
        raise DataError(f"{path}: not a readable image (corrupt or unsupported format)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_label_png(path: str | Path) -> np.ndarray:
    """A single-channel label/mask PNG as it is stored (uint8 or uint16), or DataError."""
    if not Path(path).is_file():
        raise DataError(f"{path}: label file not found")
    lab = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_UNCHANGED)
    if lab is None:
        raise DataError(f"{path}: not a readable PNG")
    if lab.ndim == 3:
        lab = lab[..., 0]
    return lab


def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _paired_names(root: Path, labels_subdir: str) -> tuple[list[str], dict[str, Path]]:
    """(sorted stems of `root/images/*` that have `root/<labels_subdir>/<stem>.png`, {stem: image path})."""
    images = {p.stem: p for p in _image_files(root / "images")}
    labels_dir = root / labels_subdir
    if not labels_dir.is_dir():
        raise DataError(f"{labels_dir}: folder not found")
    return sorted(n for n in images if (labels_dir / f"{n}.png").is_file()), images


def _check_same_size(image: np.ndarray, label: np.ndarray, label_path: Path) -> None:
    if image.shape[:2] != label.shape[:2]:
        raise DataError(f"{label_path}: size {label.shape[1]}x{label.shape[0]} differs from its image "
                        f"{image.shape[1]}x{image.shape[0]}")


class FolderMaskReader:
    """`root/images/<stem>.*` with `root/masks/<stem>.png`: 0 = background, 128 = ignore, other = object.

    One object per file (as in COCO-MVal and GrabCut); other objects in the image are not labelled.
    """

    def __init__(self, root: str | Path, names: list[str] | None = None):
        self.root = Path(root)
        self.names, self._images = _paired_names(self.root, "masks")
        if names is not None:
            wanted = set(names)
            self.names = [n for n in self.names if n in wanted]

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> Sample:
        name = self.names[i]
        image = read_image_rgb(self._images[name])
        mask_path = self.root / "masks" / f"{name}.png"
        mask = read_label_png(mask_path)
        _check_same_size(image, mask, mask_path)
        ignore = mask == 128
        obj = (mask > 0) & ~ignore
        return Sample(image, [obj] if obj.any() else [], ignore, name)


class SemanticLabelReader:
    """`root/images/*.jpg` with `root/labels/<stem>.png` holding class ids; each 4-connected region of one
    class is one segment, `void_id` pixels are ignored. Regions smaller than `min_area` pixels are ignored too
    (annotation noise that no person would click)."""

    def __init__(self, root: str | Path, void_id: int = 11, min_area: int = 16):
        self.root = Path(root)
        self.void_id = void_id
        self.min_area = min_area
        self.names, self._images = _paired_names(self.root, "labels")

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> Sample:
        name = self.names[i]
        image = read_image_rgb(self._images[name])
        label_path = self.root / "labels" / f"{name}.png"
        classes = read_label_png(label_path)
        _check_same_size(image, classes, label_path)
        ignore = classes == self.void_id
        segments, cats = [], []
        for c in np.unique(classes):
            if c == self.void_id:
                continue
            n, comp = cv2.connectedComponents((classes == c).astype(np.uint8), connectivity=4)
            for k in range(1, n):
                m = comp == k
                if m.sum() < self.min_area:
                    ignore |= m
                else:
                    segments.append(m)
                    cats.append(int(c))
        return Sample(image, segments, ignore, name, cats)
