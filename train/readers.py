"""Readers for folders of images with binary masks and for semantic label maps (CamVid style).

Each reader is a sequence of `Sample`s; images are read lazily, so a reader over thousands of files is cheap.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO, Optional

import cv2
import numpy as np

from .sample import DataError, Sample

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")  # GIF: first frame


# The largest image (width x height) any part of the project decodes. A decoded image costs 3 bytes a pixel and
# the annotator keeps a few int32 maps of the same size (labels, undo patches, masks), so 50 MP is ~1-2 GB at most;
# a 12-24 MP camera photo is far below it. Larger files (gigapixel scans, decompression bombs: a 30000x30000 PNG
# of zeros is ~1 MB on disk and 2.7 GB decoded) are refused from their header, before anything is decoded.
MAX_PIXELS = 50_000_000


def _png_size(f: BinaryIO, head: bytes) -> Optional[tuple[int, int]]:
    if len(head) >= 24 and head[12:16] == b"IHDR":
        return struct.unpack(">II", head[16:24])
    return None


def _gif_size(f: BinaryIO, head: bytes) -> Optional[tuple[int, int]]:
    return struct.unpack("<HH", head[6:10]) if len(head) >= 10 else None


def _bmp_size(f: BinaryIO, head: bytes) -> Optional[tuple[int, int]]:
    if len(head) < 26:
        return None
    if struct.unpack("<I", head[14:18])[0] == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        return struct.unpack("<HH", head[18:22])
    w, h = struct.unpack("<ii", head[18:26])
    return abs(w), abs(h)  # negative height = top-down rows


def _webp_size(f: BinaryIO, head: bytes) -> Optional[tuple[int, int]]:
    kind = head[12:16]
    if kind == b"VP8X" and len(head) >= 30:
        return 1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(head[27:30], "little")
    if kind == b"VP8L" and len(head) >= 25:
        bits = int.from_bytes(head[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if kind == b"VP8 " and len(head) >= 30:
        w, h = struct.unpack("<HH", head[26:30])
        return w & 0x3FFF, h & 0x3FFF
    return None


def _jpeg_size(f: BinaryIO, head: bytes) -> Optional[tuple[int, int]]:
    """Walk the marker segments (seeking over their bodies, e.g. big EXIF blocks) up to the frame header."""
    f.seek(2)
    for _ in range(1000):  # a real file reaches its SOF in a few dozen segments
        if f.read(1) != b"\xff":  # every marker starts with 0xFF
            return None
        b = f.read(1)
        while b == b"\xff":  # fill bytes before a marker
            b = f.read(1)
        if not b:
            return None
        marker = b[0]
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # markers without a body
            continue
        seg = f.read(2)
        if len(seg) < 2:
            return None
        length = struct.unpack(">H", seg)[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn (not DHT / JPG / DAC)
            sof = f.read(5)
            if len(sof) < 5:
                return None
            h, w = struct.unpack(">HH", sof[1:5])
            return w, h
        if marker in (0xD9, 0xDA) or length < 2:  # end of image / start of scan before any frame header
            return None
        f.seek(length - 2, 1)
    return None


def _tiff_size(f: BinaryIO, head: bytes) -> Optional[tuple[int, int]]:
    """ImageWidth (256) / ImageLength (257) of the first IFD (classic TIFF; BigTIFF is left to OpenCV's limit)."""
    end = "<" if head[:2] == b"II" else ">"
    if struct.unpack(end + "H", head[2:4])[0] != 42:
        return None
    f.seek(struct.unpack(end + "I", head[4:8])[0])
    raw = f.read(2)
    if len(raw) < 2:
        return None
    n = min(struct.unpack(end + "H", raw)[0], 4096)
    entries = f.read(12 * n)
    size: dict[int, int] = {}
    for k in range(len(entries) // 12):
        tag, typ = struct.unpack(end + "HH", entries[12 * k: 12 * k + 4])
        if tag in (256, 257):
            fmt = end + ("H" if typ == 3 else "I")  # SHORT or LONG
            size[tag] = struct.unpack(fmt, entries[12 * k + 8: 12 * k + 8 + struct.calcsize(fmt)])[0]
    return (size[256], size[257]) if len(size) == 2 else None


def image_size(path: str | Path) -> Optional[tuple[int, int]]:
    """(width, height) from the file's header alone (PNG, JPEG, GIF, BMP, WebP, TIFF), without decoding it;
    None if the format is not recognised or the header is damaged (the decoder then has the last word)."""
    try:
        with open(path, "rb") as f:
            head = f.read(32)
            if head.startswith(b"\x89PNG\r\n\x1a\n"):
                parse = _png_size
            elif head.startswith(b"\xff\xd8"):
                parse = _jpeg_size
            elif head[:6] in (b"GIF87a", b"GIF89a"):
                parse = _gif_size
            elif head.startswith(b"BM"):
                parse = _bmp_size
            elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
                parse = _webp_size
            elif head[:4] in (b"II*\x00", b"MM\x00*"):
                parse = _tiff_size
            else:
                return None
            return parse(f, head)
    except (OSError, struct.error):
        return None


# Formats whose displayed size follows from the header and the EXIF orientation (OpenCV's decoder applies it for
# all four). TIFF (pages, its own orientation tag) and GIF (frames) are decoded instead.
_PROBED_FORMATS = {"JPEG", "PNG", "WEBP"}
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _looks_complete(path: str | Path, fmt: str) -> bool:
    """Whether the file ends as its format ends (a truncated download or copy does not): JPEG with its EOI
    marker, PNG with its IEND chunk, WebP at its RIFF length. False only sends the file to the decoder, so a
    JPEG with data after its end (a phone's motion photo) is decoded, not refused."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        n = f.tell()
        if fmt == "WEBP":
            f.seek(4)
            return struct.unpack("<I", f.read(4))[0] + 8 == n
        f.seek(max(0, n - 16))
        tail = f.read()
    if fmt == "PNG":
        return tail.endswith(_PNG_END)
    return tail.rstrip(b"\x00").endswith(b"\xff\xd9")


def displayed_size(path: str | Path) -> Optional[tuple[int, int]]:
    """(width, height) of the image as read_image_rgb will return it (EXIF orientation applied), from the header
    and the EXIF block alone: milliseconds for a 24 MP photo that takes half a second to decode. None where the
    header cannot say for sure (unknown or damaged header, TIFF, GIF, Pillow and our own header parser disagree):
    then decode it. A file that passes may still fail to decode further in; read_image_rgb says so when it is
    opened."""
    size = image_size(path)
    if size is None:
        return None
    try:
        from PIL import Image

        with Image.open(path) as im:
            if im.format not in _PROBED_FORMATS or tuple(im.size) != tuple(size) or not _looks_complete(path, im.format):
                return None
            orientation = im.getexif().get(0x0112, 1)
    except Exception:  # Pillow missing, refused (its own bomb limit) or confused: the decoder decides
        return None
    w, h = size
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)  # transposed / rotated by 90 degrees


def check_image_size(path: str | Path, width: int, height: int) -> None:
    """DataError naming the file if width x height is above MAX_PIXELS."""
    if width * height > MAX_PIXELS:
        raise DataError(f"{path}: {width}x{height} pixels ({width * height / 1e6:.0f} MP) is above the "
                        f"{MAX_PIXELS / 1e6:.0f} MP limit (too large to load safely; downscale or tile it)")


def read_image_rgb(path: str | Path) -> np.ndarray:
    """HxWx3 uint8 RGB (grey / alpha are converted), or DataError naming the file.

    The one image decoder of the project (the annotator wraps it too). Images above MAX_PIXELS are refused
    from their header before any decoding, so no input file can make the process allocate more than that.
    """
    if not Path(path).is_file():
        raise DataError(f"{path}: image file not found")
    size = image_size(path)
    if size is not None:
        check_image_size(path, *size)
    try:
        data = np.fromfile(str(path), np.uint8)  # fromfile + imdecode, not imread: non-ASCII paths work
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    try:
        img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None  # imdecode asserts on an empty buffer
    except cv2.error:  # e.g. above OpenCV's own pixel limit (OPENCV_IO_MAX_IMAGE_PIXELS) in a header we skip
        img = None
    del data
    if img is None or img.ndim != 3 or img.shape[0] == 0 or img.shape[1] == 0:
        raise DataError(f"{path}: not a readable image (corrupt or unsupported format)")
    check_image_size(path, img.shape[1], img.shape[0])  # a header we could not parse: refuse after all
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


class BsdsReader:
    """BSDS500 layout: `root/images/<id>.jpg` with `root/segs/<id>_<k>.png`, one 16-bit label map per person who
    segmented the image (5 or more), one label per region, every pixel labelled.

    One item per (image, person): `names` are `<id>_<k>`, `image_ids[i]` the image of item i, so a split by
    image keeps every person's segmentation of a held-out image out. Each region of a label map is one segment;
    regions smaller than `min_area` pixels are ignored (slivers no person would click). `ids` limits the reader to
    those images; `human_segmentations(id)` gives all label maps of one image (the whole-image measures compare
    against all of them)."""

    def __init__(self, root: str | Path, ids: list[str] | None = None, min_area: int = 64):
        self.root = Path(root)
        self.min_area = min_area
        images = {p.stem: p for p in _image_files(self.root / "images")}
        segs_dir = self.root / "segs"
        if not segs_dir.is_dir():
            raise DataError(f"{segs_dir}: folder not found")
        by_image: dict[str, list[tuple[int, Path]]] = {}
        for p in segs_dir.glob("*.png"):
            stem, _, k = p.stem.rpartition("_")
            if stem in images and k.isdigit():
                by_image.setdefault(stem, []).append((int(k), p))
        wanted = set(ids) if ids is not None else None
        self._images = images
        self._segs = {i: [p for _, p in sorted(v)] for i, v in by_image.items() if wanted is None or i in wanted}
        self.ids = sorted(self._segs)
        self.names: list[str] = []
        self.image_ids: list[str] = []
        self._items: list[Path] = []
        for i in self.ids:
            for p in self._segs[i]:
                self.names.append(p.stem)
                self.image_ids.append(i)
                self._items.append(p)

    def __len__(self) -> int:
        return len(self._items)

    def split_key(self, i: int) -> str:
        """The name a validation split holds out: the image, not the person."""
        return self.image_ids[i]

    def _read_label(self, path: Path, image: np.ndarray) -> np.ndarray:
        label = read_label_png(path)
        if label.ndim != 2:
            raise DataError(f"{path}: not a single-channel label map")
        _check_same_size(image, label, path)
        return label

    def human_segmentations(self, image_id: str) -> tuple[np.ndarray, list[np.ndarray]]:
        """(RGB image, [label map of each person]) of one image."""
        if image_id not in self._segs:
            raise DataError(f"{self.root}: no image {image_id!r} with human segmentations")
        image = read_image_rgb(self._images[image_id])
        return image, [self._read_label(p, image) for p in self._segs[image_id]]

    def __getitem__(self, i: int) -> Sample:
        image = read_image_rgb(self._images[self.image_ids[i]])
        label = self._read_label(self._items[i], image)
        values, inverse, counts = np.unique(label, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(label.shape)
        ignore = np.zeros(label.shape, bool)
        segments = []
        for k in range(len(values)):
            m = inverse == k
            if counts[k] < self.min_area:
                ignore |= m
            else:
                segments.append(m)
        return Sample(image, segments, ignore, self.names[i])
