"""A corpus of the files people really have: unusual but valid images, broken images, and broken project, COCO and
weights files. Built fresh in a temporary folder by each test (Pillow makes the formats OpenCV cannot write).

`image_corpus(dir)` -> {kind: (path, readable)}: `readable` says whether a careful tool can decode it into an
image (then it must work) or not (then it must be refused with a message naming the file).
"""
from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np

W, H = 48, 32


def _rgb(seed: int = 0, h: int = H, w: int = W) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    img[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = (220, 40, 40)
    return img


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def huge_png(path: Path, side: int = 30000) -> None:
    """A valid greyscale PNG of side x side zero pixels, ~1 MB on disk: what a decompression bomb (or a big scan)
    looks like to a tool that decodes first and asks questions later. Written row by row, so it is cheap."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte + pixels
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", body)
                     + _png_chunk(b"IEND", b""))


def image_corpus(folder: Path, include_bomb: bool = True) -> dict[str, tuple[Path, bool]]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, tuple[Path, bool]] = {}

    def add(kind: str, name: str, readable: bool) -> Path:
        p = folder / name
        out[kind] = (p, readable)
        return p

    rgb = _rgb()
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    jpg, png = jpg.tobytes(), png.tobytes()
    # --- valid, if unusual
    add("plain_jpeg", "plain.jpg", True).write_bytes(jpg)
    add("plain_png", "plain.png", True).write_bytes(png)
    cv2.imwrite(str(add("png_16bit", "deep16.png", True)), (rgb.astype(np.uint16) * 257)[..., ::-1])
    cv2.imwrite(str(add("grey_png", "grey.png", True)), rgb[..., 0])
    cv2.imwrite(str(add("rgba_png", "alpha.png", True)),
                np.dstack([rgb[..., ::-1], np.full((H, W), 128, np.uint8)]))
    Image.fromarray(rgb).convert("CMYK").save(add("cmyk_jpeg", "cmyk.jpg", True), "JPEG")
    Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=16).save(add("palette_png", "palette.png", True))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.fromarray(rgb).save(add("exif_rotated_jpeg", "exif_rotated.jpg", True), "JPEG", exif=exif.tobytes())
    frames = [Image.fromarray(_rgb(s)) for s in range(3)]
    frames[0].save(add("animated_gif", "animated.gif", True), save_all=True, append_images=frames[1:], duration=50)
    frames[0].save(add("multipage_tiff", "pages.tiff", True), save_all=True, append_images=frames[1:])
    cv2.imwrite(str(add("one_pixel", "tiny.png", True)), np.full((1, 1, 3), 200, np.uint8))
    cv2.imwrite(str(add("webp", "photo.webp", True)), rgb[..., ::-1])
    cv2.imwrite(str(add("bmp", "photo.bmp", True)), rgb[..., ::-1])
    add("unicode_name", "café_ñandú_写真.png", True).write_bytes(png)
    add("spaces_in_name", "my holiday photo (1).jpg", True).write_bytes(jpg)
    add("uppercase_suffix", "SHOUT.JPG", True).write_bytes(jpg)
    # --- broken
    add("zero_bytes_jpeg", "empty.jpg", False).write_bytes(b"")
    add("zero_bytes_png", "empty.png", False).write_bytes(b"")
    add("truncated_jpeg", "truncated.jpg", False).write_bytes(jpg[: len(jpg) // 3])
    add("truncated_png", "truncated.png", False).write_bytes(png[: len(png) // 3])
    add("text_named_jpg", "notes.jpg", False).write_text("this is not an image\n")
    add("html_named_png", "page.png", False).write_text("<html><body>404</body></html>")
    add("png_header_only", "header_only.png", False).write_bytes(png[:33])
    add("jpeg_with_garbage", "garbage.jpg", False).write_bytes(jpg[:2] + os.urandom(400))
    if include_bomb:
        huge_png(add("bomb_30000px_png", "bomb.png", False))
    loop = add("symlink_loop", "loop.jpg", False)
    os.symlink(loop.name, loop)  # points at itself
    dangling = add("dangling_symlink", "gone.jpg", False)
    os.symlink(folder / "does_not_exist.jpg", dangling)
    add("folder_named_jpg", "album.jpg", False).mkdir()
    fifo = add("fifo_named_png", "pipe.png", False)
    os.mkfifo(fifo)  # reading it would block forever: a tool must not hang on it
    return out


def write_label_png(path: Path, labels: np.ndarray) -> None:
    from annotator.document import ids_to_rgb

    cv2.imwrite(str(path), cv2.cvtColor(ids_to_rgb(labels), cv2.COLOR_RGB2BGR))


def project_json_variants(good: dict) -> dict[str, object]:
    """Broken versions of a valid project.json dict (or raw text): {kind: content}."""
    import copy

    def changed(fn):
        d = copy.deepcopy(good)
        fn(d)
        return d

    return {
        "not_json": "{ this is not json",
        "empty_file": "",
        "json_list": [1, 2, 3],
        "missing_images": changed(lambda d: d.pop("images")),
        "images_not_a_list": changed(lambda d: d.__setitem__("images", {"a": 1})),
        "image_without_path": changed(lambda d: d["images"][0].pop("path")),
        "width_is_text": changed(lambda d: d["images"][0].__setitem__("width", "wide")),
        "negative_segment_id": changed(lambda d: d["images"][0]["segments"].append(
            {"id": -5, "category_id": good["categories"][0]["id"]})),
        "huge_segment_id": changed(lambda d: d["images"][0]["segments"].append(
            {"id": 2 ** 40, "category_id": good["categories"][0]["id"]})),
        "unknown_category_in_segment": changed(lambda d: d["images"][0]["segments"].append(
            {"id": 77, "category_id": 999})),
        "label_map_missing": changed(lambda d: d["images"][0].__setitem__("labels", "labels/not_there.png")),
        "label_map_outside_project": changed(lambda d: d["images"][0].__setitem__("labels", "../../etc/passwd")),
        "categories_wrong_type": changed(lambda d: d.__setitem__("categories", "sky")),
        "duplicate_category_ids": changed(lambda d: d["categories"].append(dict(d["categories"][0]))),
    }


def coco_variants(data: dict) -> dict[str, object]:
    import copy

    def changed(fn):
        d = copy.deepcopy(data)
        fn(d)
        return d

    ann0 = data["annotations"][0]
    return {
        "not_json": "[[[",
        "missing_annotations": changed(lambda d: d.pop("annotations")),
        "missing_png": changed(lambda d: d["annotations"][0].__setitem__("file_name", "nope.png")),
        "duplicate_image_ids": changed(lambda d: d["images"].append(dict(d["images"][0]))),
        "segment_id_not_in_png": changed(lambda d: d["annotations"][0]["segments_info"].append(
            dict(ann0["segments_info"][0], id=4242))),
        "unknown_category": changed(lambda d: d["annotations"][0]["segments_info"][0].__setitem__(
            "category_id", 31337)),
        "file_name_dotdot": changed(lambda d: d["images"][0].__setitem__("file_name", "../../secret.png")),
        "file_name_absolute": changed(lambda d: d["images"][0].__setitem__("file_name", "/etc/hostname")),
        "png_name_dotdot": changed(lambda d: d["annotations"][0].__setitem__("file_name", "../x.png")),
    }


def write_variant(path: Path, content) -> None:
    path.write_text(content if isinstance(content, str) else json.dumps(content))
