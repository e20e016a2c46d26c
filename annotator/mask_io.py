"""Segmentation-mask export: one class PNG and one instance PNG per image, in the "Segmentation mask 1.1" layout
that CVAT exports and imports (Pascal VOC's segmentation layout with a label map). No Qt here.

``export_segmentation_masks(project, out_dir)`` writes

* ``SegmentationClass/<stem>.png``: a palette PNG whose pixel values are class indices: 0 = background (not
  labelled), k = the k-th category in id order. The palette holds the categories' colours, so the file shows
  those colours in a viewer, and CVAT reads it back by colour;
* ``SegmentationObject/<stem>.png``: a palette PNG of instance indices, 0 = background, 1..N the image's segments
  in id order, coloured with the Pascal VOC palette;
* ``labelmap.txt``: ``name:r,g,b::`` per class, ``background`` first (CVAT's label map);
* ``ImageSets/Segmentation/default.txt``: the image stems, one per line.

Every image of the project gets both PNGs (an image with no segments is all background). A palette PNG holds
at most 255 classes and 255 segments per image besides the background; more is a ValueError naming the image.
Two categories with the same colour are told apart by index but not by colour (a warning in the log).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional, Union

import numpy as np
from PIL import Image

from annotator.document import Project, atomic_write_bytes
from annotator.polygon_io import unique_stems
from annotator.staging import Progress, StagedOutput, report

log = logging.getLogger(__name__)
PathLike = Union[str, os.PathLike]
__all__ = ["export_segmentation_masks", "voc_palette"]


def voc_palette(n: int = 256) -> np.ndarray:
    """The Pascal VOC colour map: (n, 3) uint8, index 0 black; neighbouring indices get distinct colours."""
    palette = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette[i] = (r, g, b)
    return palette


def _palette_png(indices: np.ndarray, palette: np.ndarray) -> bytes:
    import io

    image = Image.fromarray(indices.astype(np.uint8), mode="P")
    full = np.zeros((256, 3), np.uint8)
    full[:len(palette)] = palette[:256]
    image.putpalette(full.reshape(-1).tolist())
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def export_segmentation_masks(project: Project, out_dir: PathLike, progress: Optional[Progress] = None) -> str:
    """Write the masks of every image into ``out_dir`` (see module doc); returns the path of labelmap.txt.
    ``progress(done, total)`` may cancel (annotator.staging.Cancelled); ``out_dir`` is then left as it was."""
    categories = sorted(project.categories, key=lambda c: c.id)
    if len(categories) > 255:
        raise ValueError(f"{len(categories)} categories: a class PNG holds at most 255 besides the background")
    colours = [tuple(c.color) for c in categories]
    if len(set(colours)) < len(colours):
        log.warning("two categories share a colour: their class PNG pixels differ by index, not by colour")
    class_index = {c.id: k for k, c in enumerate(categories, 1)}
    class_palette = np.array([(0, 0, 0)] + colours, np.uint8).reshape(-1, 3)
    object_palette = voc_palette()
    with StagedOutput(out_dir) as staged:
        stems = unique_stems(project)
        total = len(project.images)
        for k, (entry, stem) in enumerate(zip(project.images, stems)):
            report(progress, k, total)
            was_loaded = entry.is_loaded
            labels = entry.labels
            ids = sorted(sid for sid in entry.segments)
            if len(ids) > 255:
                raise ValueError(f"{entry.name} has {len(ids)} segments: an instance PNG holds at most 255")
            # Look-up tables from segment id to class and to instance index, over the ids present.
            top = int(labels.max()) if labels.size else 0
            to_class = np.zeros(max(top, max(ids, default=0)) + 1, np.uint8)
            to_object = np.zeros_like(to_class)
            for n, sid in enumerate(ids, 1):
                to_class[sid] = class_index[entry.segments[sid].category_id]
                to_object[sid] = n
            atomic_write_bytes(staged.path(f"SegmentationClass/{stem}.png"),
                               _palette_png(to_class[labels], class_palette))
            atomic_write_bytes(staged.path(f"SegmentationObject/{stem}.png"),
                               _palette_png(to_object[labels], object_palette))
            if not was_loaded:
                entry.unload()
        report(progress, total, total)
        atomic_write_bytes(staged.path("ImageSets/Segmentation/default.txt"),
                           "".join(f"{s}\n" for s in stems).encode("utf-8"))
        lines = ["# label:color_rgb:parts:actions", "background:0,0,0::"]
        lines += [f"{c.name}:{c.color[0]},{c.color[1]},{c.color[2]}::" for c in categories]
        atomic_write_bytes(staged.path("labelmap.txt"), ("\n".join(lines) + "\n").encode("utf-8"))
        return os.fspath(staged.final("labelmap.txt"))
