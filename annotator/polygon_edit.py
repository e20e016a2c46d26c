"""Editing a segment's outline as polygons: move, insert and delete vertices, then back to a mask. No Qt here.

A segment's mask becomes editable rings with OpenCV (``annotator.polygon_io.mask_rings``: ``cv2.findContours``
with ``RETR_CCOMP``): per connected part its outer outline and its holes, every part kept. Vertices are pixel
centres in image pixel coordinates (x, y), as floats once edited.

Density. The traced outline has a vertex at every corner of the pixel staircase: hundreds on an object of a few
hundred pixels, far too many handles to grab one. The editable rings are therefore simplified by
``DEFAULT_EPSILON`` pixels (``cv2.approxPolyDP``). That alone would make "open the editor, press Enter" redraw
the whole outline up to a pixel off, so the mask is never rebuilt from the polygons alone:

    new mask = the original mask, except where the edited rings rasterise differently from the unedited ones;
               there it is the edited rings' raster.

Both rasters use the same filler (``cv2.fillPoly`` / ``cv2.polylines`` at 1/16 pixel precision, holes cut and
their traced border pixels kept), so an unedited ring gives exactly the original mask (lossless), and an edit
changes only pixels between the old and the new outline: for a moved vertex the triangles its two edges sweep,
for a deleted one the triangle cut off, for an inserted one (on the edge) nothing until it is moved. Parts and
holes nobody edited keep their pixels, including those too small for a polygon (a lone pixel, a one-pixel line:
they are not editable and are kept as they are).

The result is applied with ``Project.set_segment_mask`` (one undo step; other segments' pixels never change).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from annotator.polygon_io import mask_rings

# Simplification of the editable rings in pixels. On the bundled sample's segments 1 px leaves about a tenth of
# the traced corners (a few dozen handles on an object a few hundred pixels across) and the outline drawn stays
# on the segment's border pixels.
DEFAULT_EPSILON = 1.0
_SHIFT = 4  # fillPoly's fixed-point bits: vertices at 1/16 pixel


@dataclass
class Ring:
    """One closed outline: ``points`` (N, 2) float x, y of pixel centres; ``hole`` True for a hole of ``part``."""

    points: np.ndarray
    part: int
    hole: bool = False


def _clean(points: np.ndarray) -> np.ndarray:
    """The ring without vertices that lie on the straight line between their neighbours (an inserted, unmoved
    vertex), so that inserting one changes no pixel."""
    p = points
    if len(p) <= 3:
        return p
    prev, nxt = np.roll(p, 1, axis=0), np.roll(p, -1, axis=0)
    a, b = p - prev, nxt - p
    cross = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    dot = (a * b).sum(1)
    scale = np.maximum((a * a).sum(1) * (b * b).sum(1), 1e-12)
    keep = ~((cross * cross <= 1e-12 * scale) & (dot > 0))
    return p[keep] if keep.sum() >= 3 else p


class PolygonEdit:
    """The editable outline of one segment (see the module doc). ``rings`` is the list edited in place by
    :meth:`move_vertex`, :meth:`insert_vertex_on_edge` and :meth:`delete_vertex`; :meth:`undo` takes back the
    last of them; :meth:`to_mask` is the mask the edit gives."""

    def __init__(self, mask: np.ndarray, epsilon: float = DEFAULT_EPSILON) -> None:
        self.mask = np.array(mask, bool)  # the original, a copy
        if self.mask.ndim != 2:
            raise ValueError(f"a mask is 2-D, got shape {self.mask.shape}")
        self.height, self.width = self.mask.shape
        self.rings: list[Ring] = []
        for part, rings in enumerate(mask_rings(self.mask, epsilon)):
            for k, r in enumerate(rings):
                if len(r) >= 3:
                    self.rings.append(Ring(r.astype(np.float64), part, k > 0))
        self._original = [r.points.copy() for r in self.rings]
        self._history: list[tuple[int, np.ndarray]] = []  # (ring index, its points before the operation)

    # ------------------------------------------------------------------------------------------ queries
    @property
    def vertex_count(self) -> int:
        return sum(len(r.points) for r in self.rings)

    @property
    def changed(self) -> bool:
        """Whether any ring differs from how it was opened (moving a vertex back counts as unchanged)."""
        return any(not np.array_equal(_clean(r.points), _clean(o)) for r, o in zip(self.rings, self._original))

    @property
    def can_undo(self) -> bool:
        return bool(self._history)

    def nearest_vertex(self, x: float, y: float, radius: float) -> Optional[tuple[int, int]]:
        """(ring, vertex) of the vertex nearest (x, y) within ``radius`` pixels, None if none is."""
        best, found = radius * radius, None
        for ri, r in enumerate(self.rings):
            d = ((r.points - (x, y)) ** 2).sum(1)
            i = int(np.argmin(d))
            if d[i] <= best:
                best, found = float(d[i]), (ri, i)
        return found

    def nearest_edge(self, x: float, y: float, radius: float) -> Optional[tuple[int, int, float, float]]:
        """(ring, edge, px, py): edge k runs from vertex k to vertex k + 1 (the last one back to 0); (px, py)
        is the point on it nearest (x, y). None if no edge is within ``radius`` pixels."""
        best, found = radius * radius, None
        for ri, r in enumerate(self.rings):
            a, b = r.points, np.roll(r.points, -1, axis=0)
            ab = b - a
            t = np.clip((((x, y) - a) * ab).sum(1) / np.maximum((ab * ab).sum(1), 1e-12), 0.0, 1.0)
            q = a + t[:, None] * ab
            d = ((q - (x, y)) ** 2).sum(1)
            k = int(np.argmin(d))
            if d[k] <= best:
                best, found = float(d[k]), (ri, k, float(q[k, 0]), float(q[k, 1]))
        return found

    # ------------------------------------------------------------------------------------------ edits
    def _record(self, ring: int) -> None:
        self._history.append((ring, self.rings[ring].points.copy()))

    def _clamp(self, x: float, y: float) -> tuple[float, float]:
        return float(np.clip(x, 0, self.width - 1)), float(np.clip(y, 0, self.height - 1))

    def move_vertex(self, ring: int, index: int, x: float, y: float, record: bool = True) -> None:
        """Put a vertex at (x, y) (kept inside the image). ``record`` False: part of the same drag as the move
        before it, so :meth:`undo` takes the whole drag back at once."""
        pts = self.rings[ring].points
        index = index % len(pts)
        if record:
            self._record(ring)
        pts[index] = self._clamp(x, y)

    def insert_vertex_on_edge(self, ring: int, edge: int, x: float, y: float) -> int:
        """A new vertex on edge ``edge`` (from vertex ``edge`` to the next) at the point of the edge nearest
        (x, y); returns its index. The outline keeps its shape (no pixel changes) until the vertex is moved."""
        pts = self.rings[ring].points
        edge = edge % len(pts)
        a, b = pts[edge], pts[(edge + 1) % len(pts)]
        ab = b - a
        t = float(np.clip(np.dot((x - a[0], y - a[1]), ab) / max(float(np.dot(ab, ab)), 1e-12), 0.01, 0.99))
        self._record(ring)
        self.rings[ring].points = np.insert(pts, edge + 1, a + t * ab, axis=0)
        return edge + 1

    def delete_vertex(self, ring: int, index: int) -> None:
        """Remove a vertex (its neighbours are joined by a straight edge). ValueError if the ring would keep
        fewer than 3."""
        pts = self.rings[ring].points
        if len(pts) <= 3:
            raise ValueError("a polygon keeps at least 3 vertices: this one cannot lose another")
        self._record(ring)
        self.rings[ring].points = np.delete(pts, index % len(pts), axis=0)

    def undo(self) -> bool:
        """Take back the last edit (a whole drag); False if there is none."""
        if not self._history:
            return False
        ring, pts = self._history.pop()
        self.rings[ring].points = pts
        return True

    # ------------------------------------------------------------------------------------------ raster
    def _part_box(self, rings: list[np.ndarray]) -> tuple[int, int, int, int]:
        """(y0, y1, x0, x1) half-open, a pixel of margin round the rings, clipped to the image."""
        allp = np.concatenate(rings)
        x0, y0 = np.floor(allp.min(0)).astype(int) - 1
        x1, y1 = np.ceil(allp.max(0)).astype(int) + 2
        return max(0, int(y0)), min(self.height, int(y1)), max(0, int(x0)), min(self.width, int(x1))

    def _raster(self, parts: dict[int, list[tuple[bool, np.ndarray]]], box: tuple[int, int, int, int]
                ) -> np.ndarray:
        """The parts ({part: [(hole, points), ...]}) filled inside box (y0, y1, x0, x1): each part drawn alone
        in its own box (outline filled, holes cut, the holes' traced border pixels kept) and the parts OR-ed,
        so a part lying inside another's hole is not cut away."""
        y0, y1, x0, x1 = box
        out = np.zeros((y1 - y0, x1 - x0), np.uint8)
        scale = float(1 << _SHIFT)
        for rings in parts.values():
            py0, py1, px0, px1 = self._part_box([pts for _, pts in rings])
            py0, py1, px0, px1 = max(py0, y0), min(py1, y1), max(px0, x0), min(px1, x1)
            if py0 >= py1 or px0 >= px1:
                continue
            canvas = np.zeros((py1 - py0, px1 - px0), np.uint8)
            for hole, pts in sorted(rings, key=lambda hp: hp[0]):  # the outline first, then its holes
                fixed = np.round((_clean(pts) - (px0, py0)) * scale).astype(np.int32).reshape(-1, 1, 2)
                cv2.fillPoly(canvas, [fixed], 0 if hole else 1, cv2.LINE_8, _SHIFT)
                cv2.polylines(canvas, [fixed], True, 1, 1, cv2.LINE_8, _SHIFT)
            out[py0 - y0:py1 - y0, px0 - x0:px1 - x0] |= canvas
        return out.astype(bool)

    def to_mask(self) -> np.ndarray:
        """HxW bool: the original mask where the edited rings rasterise as the unedited ones did, the edited
        rings' raster elsewhere (exactly the original when nothing was edited)."""
        out = self.mask.copy()
        edited = {r.part for r, o in zip(self.rings, self._original)
                  if not np.array_equal(_clean(r.points), _clean(o))}
        if not edited:
            return out
        old: dict[int, list[tuple[bool, np.ndarray]]] = {}
        new: dict[int, list[tuple[bool, np.ndarray]]] = {}
        for r, o in zip(self.rings, self._original):
            old.setdefault(r.part, []).append((r.hole, o))
            new.setdefault(r.part, []).append((r.hole, r.points))
        # Only pixels near an edited part can change; the parts overlapping that box are drawn, not all of
        # them (a mask of 6,000 specks: 0.1 s instead of 3 s on a 9 MP image).
        y0, y1, x0, x1 = self._part_box([pts for k in edited for rings in (old[k], new[k]) for _, pts in rings])
        near = [k for k in old if any(
            b[0] < y1 and y0 < b[1] and b[2] < x1 and x0 < b[3]
            for b in (self._part_box([p for _, p in old[k]]), self._part_box([p for _, p in new[k]])))]
        box = (y0, y1, x0, x1)
        base = self._raster({k: old[k] for k in near}, box)
        now = self._raster({k: new[k] for k in near}, box)
        sub = out[y0:y1, x0:x1]
        diff = base != now
        sub[diff] = now[diff]
        return out
