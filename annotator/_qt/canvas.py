"""Image canvas: pyqtgraph ViewBox with the image, the label overlay, the current proposal and tool previews.

The canvas only draws what it is given and reports mouse actions as signals in image pixel coordinates;
the main window decides what they mean.
"""
from __future__ import annotations

import functools

from typing import Dict, Iterable, Optional, Sequence, Tuple

import cv2
import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import QPoint, QPointF, QRectF, Qt, pyqtSignal
from PyQt5.QtGui import QColor, QPainterPath, QPen
from PyQt5.QtWidgets import QGraphicsEllipseItem, QGraphicsPathItem, QGraphicsRectItem

from annotator.segment_colors import segment_color as _segment_color

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)

TOOLS = ("click", "brush", "erase", "roi")
PROPOSAL_FILL = (0, 255, 255)
PROPOSAL_EDGE = (255, 255, 0)


@functools.lru_cache(maxsize=4)
def _hatch(h: int, w: int, period: int = 8) -> np.ndarray:
    """Diagonal stripe pattern: drawn over unlabelled pixels so the remaining work shows at a glance."""
    yy, xx = np.mgrid[0:period, 0:period]
    tile = ((xx + yy) % period) < 2  # periodic in x and y: tiled, not computed per pixel (a 24 MP scan)
    return np.tile(tile, (-(-h // period), -(-w // period)))[:h, :w].copy()


def label_edges(labels: np.ndarray) -> np.ndarray:
    """HxW bool: labelled pixels whose right / lower / left / upper neighbour has another label (1 px outline)."""
    e = np.zeros(labels.shape, bool)
    dx = labels[:, 1:] != labels[:, :-1]
    dy = labels[1:, :] != labels[:-1, :]
    e[:, :-1] |= dx
    e[:, 1:] |= dx
    e[:-1, :] |= dy
    e[1:, :] |= dy
    return e & (labels > 0)


def outline_contours(mask: np.ndarray) -> list:
    """Outer and hole contours of a boolean mask (OpenCV)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    return list(contours)


DIRECT_LUT_MAX = 1 << 16  # ids below this index a colour table directly (at most 256 KB)


def lut_rows(labels: np.ndarray, ids: Iterable[int]) -> Tuple[np.ndarray, np.ndarray]:
    """(rows, keys): an HxW index into a colour table of len(keys) + 1 rows; row r < len(keys) is for segment id
    keys[r] (keys sorted), the last row for labelled pixels whose id has no segment.

    Small ids index the table directly. Imported COCO ids reach ~16.7 million (24-bit RGB ids), where a table of
    max(id) + 1 rows would be ~67 MB per redraw, so large ids are compacted to the ids present: the segments'
    ids (``ids``) plus 0, found by binary search.
    """
    top = int(labels.max()) if labels.size else 0
    if top < DIRECT_LUT_MAX:
        return labels, np.arange(top + 1, dtype=np.int64)
    keys = np.unique(np.asarray([0, *(int(i) for i in ids)], np.int64))
    rows = np.searchsorted(keys, labels)
    np.minimum(rows, len(keys) - 1, out=rows)
    rows[keys[rows] != labels] = len(keys)  # ids without a segment: drawn like before (transparent)
    return rows, keys


def compose_overlay(
    labels: np.ndarray,
    colors: Dict[int, Tuple[int, int, int]],
    opacity: float,
    show_unlabelled: bool = True,
    outlines: bool = True,
    selected: Sequence[int] = (),
) -> np.ndarray:
    """RGBA overlay for a label map: category-coloured fill, outlines, hatch on unlabelled pixels.

    Every pixel is one row of a small colour table (fill, outline, hatch stripe, unlabelled), gathered once as
    32-bit words: a 24-megapixel scan redraws in a fraction of a second instead of seconds of masked writes."""
    h, w = labels.shape
    rows, keys = lut_rows(labels, colors)
    n = len(keys) + 1
    alpha = int(round(np.clip(opacity, 0.0, 1.0) * 255))
    table = np.zeros((2 * n + 2, 4), np.uint8)  # rows: fill [0, n), outline [n, 2n), stripe 2n, unlabelled 2n+1
    for sid, col in colors.items():
        r = int(np.searchsorted(keys, sid))
        if sid > 0 and r < len(keys) and keys[r] == sid:
            table[r, :3] = col
            table[r, 3] = alpha
    table[n:2 * n] = table[:n]
    table[n + 1:2 * n, 3] = np.where(table[1:n, :3].any(axis=1) | (table[1:n, 3] > 0), 255, 0)
    table[2 * n] = (255, 255, 255, 80)
    table[2 * n + 1] = (0, 0, 0, 30)
    idx = np.array(rows, np.int32)  # a copy: rows may be the label map itself
    if outlines:
        # All outlines at once from label changes (O(pixels), no per-segment pass) ...
        idx[label_edges(labels)] += n
    if show_unlabelled:
        np.copyto(idx, np.int32(2 * n + 1) - _hatch_rows(h, w), where=labels == 0)
    rgba = table.view(np.uint32)[:, 0][idx].view(np.uint8).reshape(h, w, 4)
    for sid in selected:
        # ... and the selected segments traced with OpenCV contours, thick and white.
        if sid > 0:
            cs = outline_contours(labels == sid)
            cv2.drawContours(rgba, cs, -1, (255, 255, 255, 255), 2)
    return np.ascontiguousarray(rgba)


@functools.lru_cache(maxsize=2)
def _hatch_rows(h: int, w: int) -> np.ndarray:
    """The hatch as int8 1 (stripe) / 0, read-only (cached): the stripe row sits one below the unlabelled row."""
    rows = _hatch(h, w).astype(np.int8)
    rows.flags.writeable = False
    return rows


def _cosmetic_pen(color: QColor, width: int) -> QPen:
    """A pen of `width` screen pixels at any zoom."""
    pen = QPen(color)
    pen.setCosmetic(True)
    pen.setWidth(width)
    return pen


@functools.lru_cache(maxsize=65536)
def _segment_color_cached(segment_id: int, avoid: tuple) -> Tuple[int, int, int]:
    return _segment_color(segment_id, avoid)


def segment_color(segment_id: int, avoid: Sequence[Sequence[int]] = ()) -> Tuple[int, int, int]:
    """A distinct, stable colour per segment id (hues spaced by the golden angle, so consecutive ids differ
    strongly) that keeps away from the colours in ``avoid`` (the category swatches); see
    annotator.segment_colors."""
    return _segment_color_cached(int(segment_id), tuple(tuple(int(v) for v in c[:3]) for c in avoid))


def compose_proposals(masks: Sequence[np.ndarray], shape: Tuple[int, int], alpha: int = 110,
                      colors: Optional[Sequence[Tuple[int, int, int]]] = None) -> np.ndarray:
    """RGBA of many proposals at once (the overview): each in its own colour (``colors[k]`` if given),
    outlined, so a wrong one can be spotted and clicked away."""
    rgba = np.zeros(shape + (4,), np.uint8)
    for k, m in enumerate(masks, 1):
        col = colors[k - 1] if colors is not None else segment_color(k * 7 + 3)
        rgba[m] = (*col, alpha)
        cv2.drawContours(rgba, outline_contours(m), -1, (*col, 255), 1)
    return rgba


def compose_proposal(mask: np.ndarray, fill=PROPOSAL_FILL, edge=PROPOSAL_EDGE, alpha: int = 120) -> np.ndarray:
    # A two-row colour table gathered as 32-bit words: a boolean-indexed write costs ~0.2 s on a 24 MP scan.
    table = np.array([(0, 0, 0, 0), (*fill, alpha)], np.uint8).view(np.uint32)[:, 0]
    rgba = table[np.ascontiguousarray(mask, bool).view(np.uint8)].view(np.uint8).reshape(mask.shape + (4,))
    cv2.drawContours(rgba, outline_contours(mask), -1, (*edge, 255), 2)
    return rgba


class CanvasViewBox(pg.ViewBox):
    """ViewBox that turns clicks / drags into image-space signals depending on the active tool."""

    clicked = pyqtSignal(int, int, bool, bool)  # x, y, positive, ctrl held (selection)
    stroke = pyqtSignal(int, int, bool)  # x, y, finished (brush / eraser drags)
    roi_drawn = pyqtSignal(int, int, int, int)  # x0, y0, x1, y1 (exclusive)
    hovered = pyqtSignal(float, float)  # image coordinates under the mouse; (-1, -1) when it leaves

    def __init__(self) -> None:
        super().__init__(invertY=True, lockAspect=True, enableMenu=False)
        self.tool = "click"
        self._roi_start: Optional[QPointF] = None
        self.roi_preview = QGraphicsRectItem()
        pen = QPen(QColor(255, 200, 0))
        pen.setCosmetic(True)
        pen.setWidth(2)
        pen.setStyle(Qt.DashLine)
        self.roi_preview.setPen(pen)
        self.roi_preview.setZValue(50)
        self.roi_preview.hide()
        self.addItem(self.roi_preview, ignoreBounds=True)

    def hoverEvent(self, ev) -> None:  # noqa: N802 (Qt naming)
        if ev.isExit():
            self.hovered.emit(-1.0, -1.0)
            return
        p = self.mapSceneToView(ev.scenePos())
        self.hovered.emit(float(p.x()), float(p.y()))

    def _pix(self, ev) -> Tuple[int, int]:
        p = self.mapSceneToView(ev.scenePos())
        return int(np.floor(p.x())), int(np.floor(p.y()))

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 (Qt naming)
        if ev.button() not in (Qt.LeftButton, Qt.RightButton):
            return super().mouseClickEvent(ev)
        ev.accept()
        x, y = self._pix(ev)
        if self.tool in ("brush", "erase"):
            if ev.button() == Qt.LeftButton:
                self.stroke.emit(x, y, True)
            return
        negative = ev.button() == Qt.RightButton or bool(ev.modifiers() & Qt.ShiftModifier)
        self.clicked.emit(x, y, not negative, bool(ev.modifiers() & Qt.ControlModifier))

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802
        if ev.button() == Qt.LeftButton and self.tool in ("brush", "erase"):
            ev.accept()
            if ev.isStart():  # the drag starts where the button went down, not past the drag threshold
                d = self.mapSceneToView(ev.buttonDownScenePos())
                self.stroke.emit(int(np.floor(d.x())), int(np.floor(d.y())), False)
            x, y = self._pix(ev)
            self.stroke.emit(x, y, bool(ev.isFinish()))
            return
        if ev.button() == Qt.LeftButton and self.tool == "roi":
            ev.accept()
            a = self.mapSceneToView(ev.buttonDownScenePos())
            b = self.mapSceneToView(ev.scenePos())
            rect = QRectF(a, b).normalized()
            self.roi_preview.setRect(rect)
            self.roi_preview.show()
            if ev.isFinish():
                self.roi_preview.hide()
                self.roi_drawn.emit(
                    int(np.floor(rect.left())), int(np.floor(rect.top())),
                    int(np.ceil(rect.right())), int(np.ceil(rect.bottom())),
                )
            return
        super().mouseDragEvent(ev, axis)  # pan (left) / zoom (right)


class Canvas(pg.GraphicsLayoutWidget):
    """The image view. Wheel zooms, drag pans (in the click tool), ``fit()`` shows the whole image."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setBackground(QColor(40, 40, 40))
        self.view = CanvasViewBox()
        self.addItem(self.view)
        self.image_item = pg.ImageItem()
        self.overlay_item = pg.ImageItem()
        self.proposal_item = pg.ImageItem()
        self.stroke_item = pg.ImageItem()
        self.roi_item = QGraphicsRectItem()
        self.roi_item.setPen(_cosmetic_pen(QColor(255, 140, 0), 2))
        self.roi_item.hide()
        self.clicks_item = pg.ScatterPlotItem(size=11, pxMode=True)
        for z, item in enumerate(
            (self.image_item, self.overlay_item, self.proposal_item, self.stroke_item, self.roi_item, self.clicks_item)
        ):
            item.setZValue(z)
            self.view.addItem(item)
        # Selected segments are traced by a vector outline above the overlay, so selecting one does not redraw
        # the whole overlay (half a second on a 24-megapixel scan).
        self.selection_item = QGraphicsPathItem()
        self.selection_item.setPen(_cosmetic_pen(QColor(255, 255, 255), 2))
        self.selection_item.setZValue(1.5)
        self.view.addItem(self.selection_item, ignoreBounds=True)
        self.shape: Optional[Tuple[int, int]] = None
        self.proposal_visible = False
        # The brush / eraser footprint follows the mouse, so its size is visible before painting.
        self.brush_cursor = QGraphicsEllipseItem()
        self.brush_cursor.setPen(_cosmetic_pen(QColor(255, 255, 255), 1))
        self.brush_cursor.setZValue(60)
        self.brush_cursor.hide()
        self.view.addItem(self.brush_cursor, ignoreBounds=True)
        self.brush_radius = 8
        self.view.hovered.connect(self._on_hover)

    # --- content ---------------------------------------------------------------------------------------
    def set_image(self, rgb: Optional[np.ndarray]) -> None:
        if rgb is None:
            self.image_item.clear()
            self.overlay_item.clear()
            self.set_selection([])
            self.shape = None
            self.set_proposal(None)
            return
        self.shape = rgb.shape[:2]
        self.image_item.setImage(rgb, autoLevels=False, levels=(0, 255))
        self.fit()

    def set_overlay(self, rgba: Optional[np.ndarray]) -> None:
        if rgba is None:
            self.overlay_item.clear()
        else:
            self.overlay_item.setImage(rgba, autoLevels=False, levels=(0, 255))

    def set_selection(self, contours: Sequence[np.ndarray]) -> None:
        """Trace these OpenCV contours (pixel coordinates) in white; none clears the selection outline."""
        xs, ys, connect = [], [], []
        for c in contours:
            pts = np.asarray(c, np.float64).reshape(-1, 2) + 0.5  # pixel centres
            if len(pts) == 0:
                continue
            pts = np.vstack([pts, pts[:1]])                          # closed
            xs.append(pts[:, 0])
            ys.append(pts[:, 1])
            link = np.ones(len(pts), bool)
            link[-1] = False                                         # no line to the next contour
            connect.append(link)
        if not xs:
            self.selection_item.setPath(QPainterPath())
            return
        self.selection_item.setPath(pg.arrayToQPath(np.concatenate(xs), np.concatenate(ys), np.concatenate(connect)))

    def set_proposal(self, rgba: Optional[np.ndarray], clicks: Sequence[Tuple[int, int, bool]] = ()) -> None:
        self.proposal_visible = rgba is not None
        if rgba is None:
            self.proposal_item.clear()
        else:
            self.proposal_item.setImage(rgba, autoLevels=False, levels=(0, 255))
        self.set_clicks(clicks)

    def set_clicks(self, clicks: Sequence[Tuple[int, int, bool]]) -> None:
        """Click markers: green dots positive, red crosses negative."""
        spots = [
            {
                "pos": (x + 0.5, y + 0.5),
                "brush": pg.mkBrush(40, 220, 40) if pos else pg.mkBrush(230, 40, 40),
                "pen": pg.mkPen("w", width=1.5),
                "symbol": "o" if pos else "x",
            }
            for x, y, pos in clicks
        ]
        self.clicks_item.setData(spots)

    def set_stroke(self, rgba: Optional[np.ndarray]) -> None:
        if rgba is None:
            self.stroke_item.clear()
        else:
            self.stroke_item.setImage(rgba, autoLevels=False, levels=(0, 255))

    def set_roi_rect(self, rect: Optional[Tuple[int, int, int, int]]) -> None:
        if rect is None:
            self.roi_item.hide()
        else:
            x0, y0, x1, y1 = rect
            self.roi_item.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
            self.roi_item.show()

    def set_brush_radius(self, radius: int) -> None:
        self.brush_radius = int(radius)
        if self.brush_cursor.isVisible():
            c = self.brush_cursor.rect().center()
            self._place_cursor(c.x(), c.y())

    def _place_cursor(self, x: float, y: float) -> None:
        r = self.brush_radius + 0.5
        self.brush_cursor.setRect(QRectF(np.floor(x) + 0.5 - r, np.floor(y) + 0.5 - r, 2 * r, 2 * r))

    def _on_hover(self, x: float, y: float) -> None:
        if x < 0 or self.view.tool not in ("brush", "erase"):
            self.brush_cursor.hide()
            return
        self._place_cursor(x, y)
        self.brush_cursor.setPen(QPen(QColor(255, 120, 120) if self.view.tool == "erase" else QColor(140, 255, 140),
                                      0))
        self.brush_cursor.show()

    # --- view ------------------------------------------------------------------------------------------
    def fit(self) -> None:
        if self.shape is not None:
            h, w = self.shape
            self.view.setRange(QRectF(0, 0, w, h), padding=0.01)

    def zoom(self, factor: float) -> None:
        self.view.scaleBy((1.0 / factor, 1.0 / factor))

    def set_tool(self, tool: str) -> None:
        assert tool in TOOLS, tool
        self.view.tool = tool
        if tool not in ("brush", "erase"):
            self.brush_cursor.hide()
        self.view.setMouseEnabled(x=True, y=True)

    def image_to_widget(self, x: float, y: float) -> QPoint:
        """Widget (viewport) position of image pixel (x, y)'s centre; used by tests and scripted demos."""
        scene = self.view.mapViewToScene(QPointF(x + 0.5, y + 0.5))
        return self.mapFromScene(scene)
