"""Folder-of-masks and semantic-label-map readers (train.readers) on small fixtures written in tmp_path."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from train.readers import FolderMaskReader, SemanticLabelReader
from train.sample import DataError


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def _rgb_image(h: int, w: int) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = 250  # red in RGB
    img[..., 2] = np.arange(w, dtype=np.uint8)[None, :]
    return img


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    _write(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


# ---- FolderMaskReader ----

@pytest.fixture()
def mask_folder(tmp_path: Path) -> Path:
    root = tmp_path / "masks_data"
    mask = np.zeros((40, 50), np.uint8)
    mask[10:30, 10:30] = 255
    mask[10:30, 29:31] = 128   # uncertain border: ignore
    mask[0:2, :] = 128
    _write_rgb(root / "images" / "cat1.png", _rgb_image(40, 50))
    _write(root / "masks" / "cat1.png", mask)
    empty = np.zeros((20, 20), np.uint8)
    empty[5:8, 5:8] = 128
    _write_rgb(root / "images" / "b_empty.jpg", _rgb_image(20, 20))
    _write(root / "masks" / "b_empty.png", empty)
    _write_rgb(root / "images" / "no_mask.png", _rgb_image(20, 20))  # no mask file: not a sample
    (root / "images" / "notes.txt").write_text("not an image")
    return root


def test_folder_mask_reader(mask_folder: Path) -> None:
    r = FolderMaskReader(mask_folder)
    assert len(r) == 2 and r.names == ["b_empty", "cat1"]
    s = r[1]
    assert s.name == "cat1"
    assert s.image.shape == (40, 50, 3) and s.image.dtype == np.uint8
    assert (s.image[..., 0] == 250).all() and (s.image[..., 1] == 0).all()  # RGB, not OpenCV's BGR
    np.testing.assert_array_equal(s.image[0, :, 2], np.arange(50))
    assert len(s.segments) == 1
    obj = s.segments[0]
    expected = np.zeros((40, 50), bool)
    expected[10:30, 10:29] = True   # 255 without the 128 border
    np.testing.assert_array_equal(obj, expected)
    ignore = np.zeros((40, 50), bool)
    ignore[10:30, 29:31] = True
    ignore[0:2, :] = True
    np.testing.assert_array_equal(s.ignore, ignore)
    assert not (s.ignore & obj).any()
    # A mask with only background and ignore is a sample without a segment.
    e = r[0]
    assert e.segments == [] and e.ignore.sum() == 9


def test_folder_mask_reader_name_filter(mask_folder: Path) -> None:
    r = FolderMaskReader(mask_folder, names=["cat1", "unknown"])
    assert r.names == ["cat1"] and len(r) == 1 and r[0].name == "cat1"


def test_folder_mask_reader_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="images"):
        FolderMaskReader(tmp_path)
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match="masks"):
        FolderMaskReader(tmp_path)


def test_corrupt_image_names_the_file(mask_folder: Path) -> None:
    bad = mask_folder / "images" / "cat1.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    r = FolderMaskReader(mask_folder)
    with pytest.raises(DataError) as exc:
        r[r.names.index("cat1")]
    assert str(bad) in str(exc.value)
    r[r.names.index("b_empty")]  # the other samples still read


def test_corrupt_mask_names_the_file(mask_folder: Path) -> None:
    bad = mask_folder / "masks" / "cat1.png"
    bad.write_text("not a png")
    r = FolderMaskReader(mask_folder)
    with pytest.raises(DataError) as exc:
        r[r.names.index("cat1")]
    assert str(bad) in str(exc.value)


def test_size_mismatch(mask_folder: Path) -> None:
    bad = mask_folder / "masks" / "cat1.png"
    _write(bad, np.zeros((41, 50), np.uint8))
    r = FolderMaskReader(mask_folder)
    with pytest.raises(DataError, match="differs") as exc:
        r[r.names.index("cat1")]
    assert str(bad) in str(exc.value)


# ---- SemanticLabelReader ----

VOID = 11


@pytest.fixture()
def semantic_folder(tmp_path: Path) -> Path:
    root = tmp_path / "camvid_like"
    lab = np.full((30, 40), 3, np.uint8)   # class 3 everywhere: one region (with holes)
    lab[2:10, 2:10] = 5                    # class 5: two separate regions ...
    lab[20:28, 30:38] = 5
    lab[12:20, 12:20] = 7                  # class 7: two squares touching only at a corner: two regions
    lab[20:28, 20:28] = 7
    lab[0:30, 39] = VOID                   # void column
    lab[25:27, 2:4] = 9                    # a 4-pixel class-9 region: too small to click
    _write_rgb(root / "images" / "f001.jpg", _rgb_image(30, 40))
    _write(root / "labels" / "f001.png", lab)
    return root


def test_semantic_reader_regions(semantic_folder: Path) -> None:
    r = SemanticLabelReader(semantic_folder, void_id=VOID, min_area=16)
    assert len(r) == 1
    s = r[0]
    assert s.image.shape == (30, 40, 3)
    assert s.image[..., 0].min() > 230 and s.image[..., 1].max() < 25  # RGB (JPEG: near the written values)
    assert sorted(s.category_ids) == [3, 5, 5, 7, 7]
    assert len(s.segments) == len(s.category_ids)
    total = np.zeros((30, 40), np.int32)
    for m, c in zip(s.segments, s.category_ids):
        assert m.dtype == bool and m.shape == (30, 40)
        total += m
        n, _ = cv2.connectedComponents(m.astype(np.uint8), connectivity=4)
        assert n == 2  # each segment is one 4-connected region
        if c == 5:
            assert m.sum() == 64
        if c == 7:
            assert m.sum() == 64  # corner contact does not join the squares
    assert total.max() == 1
    expected_ignore = np.zeros((30, 40), bool)
    expected_ignore[:, 39] = True
    expected_ignore[25:27, 2:4] = True
    np.testing.assert_array_equal(s.ignore, expected_ignore)
    np.testing.assert_array_equal(total == 0, s.ignore)  # every other pixel is in exactly one segment


def test_semantic_reader_void_and_min_area_options(semantic_folder: Path) -> None:
    s = SemanticLabelReader(semantic_folder, void_id=VOID, min_area=1)[0]
    assert sorted(s.category_ids) == [3, 5, 5, 7, 7, 9]
    s = SemanticLabelReader(semantic_folder, void_id=3, min_area=16)[0]
    assert 3 not in s.category_ids and VOID in s.category_ids
    assert s.ignore.sum() > 30 * 40 // 2


def test_semantic_reader_bad_files(semantic_folder: Path) -> None:
    label = semantic_folder / "labels" / "f001.png"
    _write(label, np.zeros((30, 41), np.uint8))
    with pytest.raises(DataError, match="differs") as exc:
        SemanticLabelReader(semantic_folder)[0]
    assert str(label) in str(exc.value)
    image = semantic_folder / "images" / "f001.jpg"
    image.write_bytes(b"\xff\xd8\xff" + b"\x00" * 50)
    with pytest.raises(DataError) as exc:
        SemanticLabelReader(semantic_folder)[0]
    assert str(image) in str(exc.value)
    with pytest.raises(DataError, match="nowhere"):
        SemanticLabelReader(semantic_folder.parent / "nowhere")
    (semantic_folder / "labels" / "f001.png").unlink()
    (semantic_folder / "labels").rmdir()
    with pytest.raises(DataError, match="labels"):
        SemanticLabelReader(semantic_folder)


# ---- displayed_size: a folder of camera photos opens from the headers ----
def _pil_save(path: Path, h: int, w: int, fmt: str, orientation: int | None = None) -> None:
    from PIL import Image

    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[: h // 3] = 255
    kw = {}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kw["exif"] = exif.tobytes()
    Image.fromarray(rgb).save(path, fmt, **kw)


@pytest.mark.parametrize("fmt,ext", [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp")])
@pytest.mark.parametrize("orientation", [None, 1, 3, 6, 8])
def test_displayed_size_is_the_decoded_size_without_decoding(tmp_path, monkeypatch, fmt, ext, orientation):
    from train.readers import displayed_size, read_image_rgb

    path = tmp_path / f"photo.{ext}"
    _pil_save(path, 30, 50, fmt, orientation)
    h, w = read_image_rgb(path).shape[:2]           # what the annotator will show (OpenCV applies EXIF)

    def no_decoding(*a, **k):
        raise AssertionError("decoded")

    monkeypatch.setattr(cv2, "imdecode", no_decoding)
    monkeypatch.setattr(cv2, "imread", no_decoding)
    assert displayed_size(path) == (w, h)


def test_displayed_size_leaves_doubtful_files_to_the_decoder(tmp_path):
    from train.readers import displayed_size, read_image_rgb

    whole = tmp_path / "whole.jpg"
    _pil_save(whole, 60, 80, "JPEG")
    data = whole.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) * 2 // 3])    # a truncated copy: the header is intact
    assert displayed_size(cut) is None
    motion = tmp_path / "motion.jpg"
    motion.write_bytes(data + b"\x00\x00\x00\x18ftypmp42" + bytes(500))  # data after the JPEG's end
    assert displayed_size(motion) is None and read_image_rgb(motion).shape[:2] == (60, 80)
    png = tmp_path / "whole.png"
    _pil_save(png, 20, 30, "PNG")
    cut_png = tmp_path / "cut.png"
    cut_png.write_bytes(png.read_bytes()[:-20])
    assert displayed_size(png) == (30, 20) and displayed_size(cut_png) is None
    webp = tmp_path / "whole.webp"
    _pil_save(webp, 20, 30, "WEBP")
    cut_webp = tmp_path / "cut.webp"
    cut_webp.write_bytes(webp.read_bytes()[:-10])
    assert displayed_size(webp) == (30, 20) and displayed_size(cut_webp) is None
    for fmt, ext in (("TIFF", "tif"), ("GIF", "gif"), ("BMP", "bmp")):
        other = tmp_path / f"other.{ext}"
        _pil_save(other, 20, 30, fmt)
        assert displayed_size(other) is None       # decoded instead (pages, frames, rare formats)
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    assert displayed_size(text) is None
