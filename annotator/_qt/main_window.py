"""The main window: wires the canvas, the panels and the worker to the document model.

Accepted work lives in :class:`annotator.document.Project` (undo, autosave); the window keeps only transient UI
state: the current image, the proposal being built (its clicks and mask), queued auto-segment proposals, the
selection and the active tool. Views refresh from the project's listener events.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
from PyQt5.QtCore import Qt, QTimer, pyqtSignal
from PyQt5.QtGui import QColor, QKeySequence
from PyQt5.QtWidgets import (
    QAction,
    QColorDialog,
    QDockWidget,
    QFileDialog,
    QFrame,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressDialog,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QStatusBar,
    QVBoxLayout,
    QWidget,
)

from annotator.document import PROJECT_FILE, Project, ProjectError, read_image_checked

from .auto_segment import AutoSegmentMixin
from .canvas import Canvas, compose_overlay, outline_contours, segment_color
from .editing import EditingMixin
from .file_actions import FileActionsMixin
from .finetune_panel import FinetuneOptionsDialog, FinetunePanel, FinetuneProcess, default_threads
from .model_actions import ModelActionsMixin
from .panels import CategoryPanel, ImageListPanel, SegmentListPanel, ToolPanel
from .polygon_editor import PolygonEditorMixin
from .shortcuts import ShortcutsOverlay
from .worker import WorkerThread


class _MinimumHeightColumn(QVBoxLayout):
    """A column layout that does not report height-for-width. QScrollArea sizes a height-for-width widget to its
    preferred height (the lists' comfortable size, 1223 px here), so the side column would scroll even on a large
    screen; its word-wrapped labels keep their own minimum heights (WrappedLabel), so nothing is cut."""

    def hasHeightForWidth(self) -> bool:  # noqa: N802 (Qt's name)
        return False


class MessageBar(QStatusBar):
    """The status bar, with room for two lines of message. Qt's status bar paints a message on one line and cuts
    it at the permanent widgets, so at the default window size an export's outcome ended "... not reviewed yet,
    so not ex". Here the message is a word-wrapped label of its own (``message_label``), two lines high whatever
    the message, so the image above never moves under the mouse; a message longer than that is cut in its middle
    ("…"), the whole of it in the tooltip. ``showMessage`` / ``currentMessage`` / ``clearMessage`` work as
    QStatusBar's do (``currentMessage`` gives the whole text)."""

    LINES = 2

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.message_label = QLabel()
        self.message_label.setObjectName("statusMessage")
        self.message_label.setWordWrap(True)
        # Its width comes from the bar, never from the text: a long message must not widen the window.
        self.message_label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Fixed)
        self.addWidget(self.message_label, 1)
        self._text = ""
        self._room: Optional[Tuple[str, int]] = None
        self._expiry = QTimer(self)
        self._expiry.setSingleShot(True)
        self._expiry.timeout.connect(self.clearMessage)
        self._show()

    def showMessage(self, text: str, msecs: int = 0) -> None:  # noqa: N802 (Qt's name)
        self._text = text
        self._show()
        if msecs > 0:
            self._expiry.start(msecs)
        else:
            self._expiry.stop()
        self.messageChanged.emit(text)

    def currentMessage(self) -> str:  # noqa: N802
        return self._text

    def clearMessage(self) -> None:  # noqa: N802
        self._expiry.stop()
        if self._text:
            self._text = ""
            self._show()
            self.messageChanged.emit("")

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._show()

    def _show(self) -> None:
        label, text = self.message_label, self._text
        width = max(1, label.width())
        font = label.font().key()
        if self._room is None or self._room[0] != font:  # the height of LINES lines, measured once per font
            label.setText("\n".join(["X"] * self.LINES))
            self._room = (font, label.heightForWidth(width))
        room = self._room[1]
        if label.height() != room:
            label.setFixedHeight(room)
        label.setText(text)
        shown = text
        if text and label.heightForWidth(width) > room:
            # The longest word (a path, as a rule) is cut in its middle first; the sentence around it stays whole.
            words = text.split(" ")
            longest = max(range(len(words)), key=lambda k: len(words[k]))
            shown = self._cut_to_fit(label, width, room, words[longest],
                                     lambda w: " ".join(words[:longest] + [w] + words[longest + 1:]))
            if label.heightForWidth(width) > room:
                shown = self._cut_to_fit(label, width, room, text, lambda t: t)
        label.setToolTip(text if shown != text else "")

    @staticmethod
    def _cut_to_fit(label: QLabel, width: int, room: int, part: str, whole: Callable[[str], str]) -> str:
        """``whole(part cut in its middle)`` with as much of `part` kept as lets the label fit in `room`; left in
        the label."""
        def cut(keep: int) -> str:
            return whole(part[:keep - keep // 2] + "…" + part[len(part) - keep // 2:])

        lo, hi = 0, len(part)
        while lo < hi:
            keep = (lo + hi + 1) // 2
            label.setText(cut(keep))
            lo, hi = (keep, hi) if label.heightForWidth(width) <= room else (lo, keep - 1)
        label.setText(cut(lo))
        return label.text()


class MainWindow(PolygonEditorMixin, EditingMixin, AutoSegmentMixin, FileActionsMixin, ModelActionsMixin, QMainWindow):
    """Click-to-segment annotator window: layout, menus, project and image switching, categories, ROI, tools,
    keys. The mixins hold the rest by topic: editing (clicks, proposals, brush, undo), auto_segment,
    file_actions (export / import), model_actions (weights, fine-tuning)."""

    proposal_changed = pyqtSignal()  # a proposal appeared, changed or went away (tests / scripting)
    bulk_finished = pyqtSignal(bool)  # auto-segment finished; True if cancelled
    finetune_started = pyqtSignal(object)  # the FinetuneProcess
    finetune_finished = pyqtSignal(str)  # "done", "cancelled" or "failed"
    weights_changed = pyqtSignal(str)  # path of the weights now used by the segmenter
    weights_error = pyqtSignal(str)  # message: loading weights failed, the previous ones stay

    def __init__(
        self,
        project: Optional[Project] = None,
        segmenter: Any = None,
        segmenter_factory: Optional[Callable[[], Any]] = None,
        confirm_dialogs: bool = True,
        weights_path: Optional[str] = None,
    ) -> None:
        """``weights_path``: the file the given segmenter / factory loaded (the default base for fine-tuning);
        without a segmenter or factory the bundled weights are loaded and are the default."""
        super().__init__()
        self.setWindowTitle("Pointer annotator")
        self.resize(1280, 800)
        self.confirm_dialogs = confirm_dialogs  # False in tests/scripts: no blocking dialogs
        self.project: Optional[Project] = None
        self.index = -1
        self.image: Optional[np.ndarray] = None
        self.category_id: Optional[int] = None
        # proposal being built
        self.clicks: List[Tuple[int, int, bool]] = []
        self.reading, self.readings_count = 0, 0  # which reading of the first click (Tab), of how many
        self.proposal: Optional[np.ndarray] = None
        self.proposal_score: Optional[float] = None  # the net's predicted IoU; None where no net scored it
        self.proposal_from_bulk = False
        self.pending: Optional[int] = None  # request id of the prediction we wait for
        self.accept_when_ready = False  # Enter / A came while the prediction ran: accept it when it arrives
        self.bulk: Dict[int, List[np.ndarray]] = {}  # image index -> queued auto-segment proposals
        self._bulk_jobs: List[int] = []
        self._bulk_req: Optional[int] = None
        self._bulk_total = 0
        self.selected: List[int] = []
        self.tool = "click"
        self.roi_mode = "unlabelled"
        self.roi_rect: Optional[Tuple[int, int, int, int]] = None
        self.opacity = 0.45
        self.hatch = True
        self.color_by = "segment"  # "segment": a colour per segment (tell them apart); "category"
        self.hidden: set = set()  # segment ids of the current image not drawn (segment list tick boxes)
        self.overview = False  # all of the image's auto-segment proposals shown at once
        self.proposal_category: Optional[int] = None  # picked for the auto-segment proposal under review
        self.brush_radius = 8
        self._stroke: Optional[np.ndarray] = None
        self._stroke_last: Optional[Tuple[int, int]] = None
        self.last_latency: Optional[float] = None
        self.device = "loading…"
        self.messages: List[str] = []  # every message shown to the user (also for tests)
        self._dirty_overlay = False
        self._dirty_list: set = set()
        self._dirty_categories = False
        self._jump_to: Optional[int] = None
        self._progress: Optional[QProgressDialog] = None
        # weights: the file loaded now (None: unknown, e.g. an untrained or fake segmenter)
        self.weights_path: Optional[str] = str(weights_path) if weights_path else None
        # The default segmenter loads the bundled weights; their path is filled in once model/ is imported
        # (in the worker thread: importing torch here would slow the window's start).
        self._weights_are_bundled = self.weights_path is None and segmenter is None and segmenter_factory is None
        # fine-tuning: options the dialog starts from (steps, crop, batch_size shown; the rest passed through
        # to train.finetune.build_command)
        self.finetune_defaults: Dict[str, Any] = {"steps": 300, "crop": 256, "batch_size": 4,
                                                  "threads": default_threads()}
        self.finetune_poll_ms = 500
        self.finetune_run: Optional[FinetuneProcess] = None
        self.export_dialog = None  # the progress dialog of a running export (FileActionsMixin._with_progress)
        self.finetune_dialog: Optional[FinetuneOptionsDialog] = None
        self.finetune_panel: Optional[FinetunePanel] = None
        self.finetune_dock: Optional[QDockWidget] = None

        # --- widgets
        self.canvas = Canvas()
        self.canvas.view.clicked.connect(self.on_canvas_click)
        self.canvas.view.stroke.connect(self.on_stroke)
        self.canvas.view.roi_drawn.connect(self.on_roi_drawn)
        self.canvas.setFocusPolicy(Qt.StrongFocus)
        self.categories_panel = CategoryPanel()
        self.images_panel = ImageListPanel()
        self.segments_panel = SegmentListPanel()
        self.tools_panel = ToolPanel()
        side = QWidget()
        lay = _MinimumHeightColumn(side)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.tools_panel)
        # The spare height goes mostly to the categories and segments, which a person reads while clicking; the
        # image list is for moving between images (D / PgDn do that too).
        lay.addWidget(self.categories_panel, 3)
        lay.addWidget(self.segments_panel, 3)
        lay.addWidget(self.images_panel, 1)
        # Errors stay visible above the canvas until clicked away (status-bar messages expire).
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("background:#7a1f1f; color:white; padding:6px;")
        self.banner.setToolTip("Click to dismiss")
        self.banner.mousePressEvent = lambda ev: self.banner.hide()
        self.banner.hide()
        self._banner_lines: List[str] = []
        left = QWidget()
        llay = QVBoxLayout(left)
        llay.setContentsMargins(0, 0, 0, 0)
        llay.setSpacing(0)
        llay.addWidget(self.banner)
        llay.addWidget(self.canvas, 1)
        # The side column scrolls when the window is short: its panels' minimum heights add up to more than a
        # 768 px laptop screen, and a window may not be shorter than its contents' minimum.
        self.side_scroll = QScrollArea()
        self.side_scroll.setWidget(side)
        self.side_scroll.setWidgetResizable(True)
        self.side_scroll.setFrameShape(QFrame.NoFrame)
        self.side_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.side_scroll.setMinimumWidth(side.minimumSizeHint().width()
                                         + self.side_scroll.verticalScrollBar().sizeHint().width())
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(self.side_scroll)
        split.setStretchFactor(0, 1)
        # The side column starts about 410 px wide in the default 1280 px window: its hints then fit in the lines
        # the tool box keeps for them.
        split.setSizes([870, 410])
        self.setCentralWidget(split)
        self.overlay_help = ShortcutsOverlay(self)

        self.categories_panel.picked.connect(self.set_category)
        self.categories_panel.add_requested.connect(lambda: self.add_category())
        self.categories_panel.rename_requested.connect(lambda cid: self.rename_category(cid))
        self.categories_panel.recolor_requested.connect(lambda cid: self.recolor_category(cid))
        self.categories_panel.delete_requested.connect(lambda cid: self.delete_category(cid))
        self.categories_panel.isthing_requested.connect(
            lambda cid, on: self._edit(self.project.set_category_isthing, cid, on) if self.project else None)
        self.images_panel.picked.connect(self.show_image)
        self.segments_panel.selection_changed.connect(self._on_segment_rows_selected)
        self.segments_panel.visibility_changed.connect(self.set_segment_visible)
        self.segments_panel.delete_requested.connect(self.delete_selected)
        self.segments_panel.merge_requested.connect(self.merge_selected)
        tp = self.tools_panel
        tp.accept.connect(self.accept_proposal)
        tp.reject.connect(self.reject_proposal)
        tp.accept_all.connect(self.accept_all)
        tp.tool_changed.connect(self.set_tool)
        tp.roi_mode_changed.connect(self.set_roi_mode)
        tp.opacity_changed.connect(self.set_opacity)
        tp.hatch_changed.connect(self.set_hatch)
        tp.brush_size_changed.connect(self.set_brush_radius)

        # --- status bar
        self.setStatusBar(MessageBar())
        self.status_device = QLabel()
        self.status_latency = QLabel("last prediction: –")
        # Stays up while the project is read-only (another process holds it): banners go after a success, this not.
        self.read_only_label = QLabel()
        self.read_only_label.setStyleSheet("background:#7a1f1f; color:white; padding:2px 6px; font-weight:bold;")
        self.read_only_label.hide()
        self.statusBar().addPermanentWidget(self.read_only_label)
        # Latency over device: one above the other in the bar's two lines, the messages keep the width.
        readings = QWidget()
        column = QVBoxLayout(readings)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        for label in (self.status_latency, self.status_device):
            label.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
            column.addWidget(label)
        self.statusBar().addPermanentWidget(readings)
        self._set_device_text()

        self._build_menus()

        # --- worker (model loads lazily in its thread)
        self.worker = WorkerThread(segmenter, segmenter_factory, parent=self)
        w = self.worker.worker
        w.predicted.connect(self._on_predicted)
        w.previewed.connect(self._on_previewed)
        w.segmented.connect(self._on_segmented)
        w.progress.connect(self._on_progress)
        w.failed.connect(self._on_failed)
        w.model_ready.connect(self._on_model_ready)
        w.model_error.connect(self._on_model_error)
        w.weights_loaded.connect(self._on_weights_loaded)
        w.weights_failed.connect(self._on_weights_failed)
        self.worker.load()

        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.timeout.connect(self._flush_refresh)

        if project is not None:
            self.set_project(project)
        self._update_tool_panel()

    # ================================================================================ menus
    def _build_menus(self) -> None:
        mb = self.menuBar()

        def act(menu, text, slot, hint: str = "") -> QAction:
            # Shortcut hints only: keys are dispatched in keyPressEvent so single letters work on the canvas.
            a = QAction(text + (f"\t{hint}" if hint else ""), self)
            a.triggered.connect(lambda _=False: slot())
            menu.addAction(a)
            return a

        f = mb.addMenu("&File")
        act(f, "Open image…", self.open_image_dialog)
        act(f, "Open folder…", self.open_folder_dialog)
        act(f, "Open project…", self.open_project_dialog, "Ctrl+O")
        # Imports make a new project and open it, like the Open items (people did not find them under Export).
        act(f, "Import COCO panoptic…", self.import_panoptic)
        act(f, "Import labelme folder…", self.import_labelme)
        act(f, "Save", self.save, "Ctrl+S")
        f.addSeparator()
        act(f, "Quit", self.close, "Ctrl+Q")
        e = mb.addMenu("&Edit")
        act(e, "Undo", self.undo, "Ctrl+Z")
        act(e, "Redo", self.redo, "Ctrl+Shift+Z")
        e.addSeparator()
        act(e, "Accept proposal", self.accept_proposal, "Enter")
        act(e, "Reject proposal", self.reject_proposal, "Esc")
        # Tab is a real shortcut (not dispatched in keyPressEvent): Qt would otherwise spend it on focus moves.
        self.action_next_reading = act(e, "Another reading of the click", self.next_reading)
        self.action_next_reading.setShortcut(QKeySequence(Qt.Key_Tab))
        self.action_next_reading.setShortcutContext(Qt.WindowShortcut)
        act(e, "Accept all remaining", self.accept_all, "Shift+Enter")
        act(e, "Merge selected segments", self.merge_selected, "M")
        act(e, "Fill gaps between segments", self.fill_gaps, "G")
        act(e, "Delete selected segments", self.delete_selected, "Del")
        act(e, "Edit outline as polygon", self.start_polygon_edit, "P")
        s = mb.addMenu("&Segment")
        act(s, "Auto-segment image", self.auto_segment, "Ctrl+Shift+A")
        act(s, "Auto-segment all images", self.auto_segment_all)
        act(s, "Category for auto-segment proposals…", self.choose_auto_segment_category)
        s.addSeparator()
        act(s, "Add category…", self.add_category)
        v = mb.addMenu("&View")
        act(v, "Fit to window", self.canvas.fit, "F")
        act(v, "Zoom in", lambda: self.canvas.zoom(1.25), "+")
        act(v, "Zoom out", lambda: self.canvas.zoom(0.8), "-")
        act(v, "Colour by segment / category", lambda: self.set_color_by(
            "category" if self.color_by == "segment" else "segment"), "K")
        act(v, "All proposals at once (overview)", self.toggle_overview, "V")
        act(v, "Next image", self.next_image, "D")
        act(v, "Previous image", self.prev_image, "PgUp")
        x = mb.addMenu("E&xport")
        act(x, "COCO panoptic…", self.export_panoptic)
        act(x, "COCO instances…", self.export_instances)
        act(x, "labelme JSON…", self.export_labelme)
        act(x, "YOLO segmentation…", self.export_yolo)
        act(x, "Segmentation masks (PNG, CVAT / VOC)…", self.export_masks)
        m = mb.addMenu("&Model")
        self.action_finetune = act(m, "Fine-tune on this project…", self.open_finetune_dialog)
        self.action_load_weights = act(m, "Load weights…", self.load_weights)
        h = mb.addMenu("&Help")
        act(h, "Keyboard shortcuts", self.overlay_help.toggle, "?")

    # ================================================================================ messages
    def notify(self, text: str, error: bool = False, title: str = "Annotator") -> None:
        """Status bar + (non-blocking) message box; every message is kept in ``self.messages``."""
        self.messages.append(text)
        self.statusBar().showMessage(text.splitlines()[0] if text else "", 15000)
        if error:
            if not self.banner.isVisible():
                self._banner_lines = []
            line = text.replace("\n", " ")
            # The same error again (the same bad file opened twice) moves to the end instead of piling up.
            self._banner_lines = ([old for old in self._banner_lines if old != line] + [line])[-4:]
            self.banner.setText("\n".join(self._banner_lines))
            self.banner.show()
        if self.confirm_dialogs:
            box = QMessageBox(QMessageBox.Warning if error else QMessageBox.Information, title, text,
                              QMessageBox.Ok, self)
            box.setAttribute(Qt.WA_DeleteOnClose)
            box.open()  # non-blocking: the annotator stays usable

    def status(self, text: str) -> None:
        self.statusBar().showMessage(text, 8000)

    def clear_error_banner(self) -> None:
        """A later success makes old errors stale: the banner goes (they stay in ``self.messages``)."""
        self.banner.hide()
        self._banner_lines = []

    def _set_device_text(self) -> None:
        weights = Path(self.weights_path).name if self.weights_path else "untrained / unknown"
        self.status_device.setText(f"device: {self.device} | weights: {weights}")
        self.status_device.setToolTip(self.weights_path or "")

    def _on_model_ready(self, device: str) -> None:
        self.device = device
        if self._weights_are_bundled and self.weights_path is None:
            self.weights_path = _bundled_weights_path()
        self._set_device_text()

    def _on_model_error(self, msg: str) -> None:
        self.device = "no model (manual editing only)"
        self._set_device_text()
        self.notify(msg + "\nManual editing (brush, categories, export) still works.", error=True)

    def _on_failed(self, req_id: int, msg: str) -> None:
        if req_id == self.pending:
            self.pending = None
            if self.clicks:
                self.clicks.pop()  # that click got no answer
            if self.proposal is None:
                self.clicks = []
            self._show_proposal()
        if req_id == self._bulk_req:
            self._finish_bulk(cancelled=True)
        self.status(msg)

    # ================================================================================ project / images
    def set_project(self, project: Project) -> None:
        if self.project is not None:
            self.project.remove_listener(self._on_doc_event)
            if self.project is not project:
                self._close_project(self.project)  # its lock goes: another window or process may edit it now
        self.project = project
        self.bulk.clear()
        # Proposals left unreviewed by an earlier session (quit or crash mid-review) come back to review.
        for i in project.images_with_proposals():
            masks = project.proposals(i)
            if masks:
                self.bulk[i] = masks
        self.selected = []
        project.add_listener(self._on_doc_event)
        # A project another process holds opens read-only (Project.open(fallback_read_only=True)): say so.
        self.setWindowTitle(f"Pointer annotator – {project.project_dir}"
                            + (" (read-only)" if project.read_only else ""))
        reason = str(project.read_only_reason or "")
        reason = reason.split(": ", 1)[1] if reason.startswith(f"{project.project_dir}: ") else reason
        self.read_only_label.setText(f"READ-ONLY: {reason}" if project.read_only else "")
        self.read_only_label.setToolTip(self.read_only_label.text())
        self.read_only_label.setVisible(project.read_only)
        cats = project.categories
        self.category_id = cats[0].id if cats else None
        self._refresh_categories()
        self._refresh_image_list()
        # Every problem found on opening in one message: one dialog and one banner entry, not one per file.
        problems = list(getattr(project, "skipped", [])) + list(getattr(project, "warnings", []))
        if not project.images:
            problems.append("The project has no readable images.")
        if problems:
            self.notify(opening_problems_text(problems), error=True)
        self.index = -1
        self._refresh_proposal_counts()
        if project.images:
            names = [e.name for e in project.images]
            last = remembered_image(project)
            self.show_image(names.index(last) if last in names else 0)
        else:
            self.canvas.set_image(None)

    def open_path(self, path: str, project_dir: Optional[str] = None) -> bool:
        """Open an image, a folder of images or a project folder / project.json. Returns success."""
        try:
            project = open_project_for(path, project_dir)
        except (ProjectError, OSError, ValueError) as exc:
            self.notify(cannot_open_text(path, exc), error=True)
            return False
        self.clear_error_banner()  # earlier failures to open are stale once something opened
        current = self.project
        if (project.read_only and current is not None and not current.read_only
                and project.project_dir == current.project_dir):
            # The project this window edits: a second Project of it is refused (it opened read-only), keep ours.
            self.status(f"{current.project_dir} is already open here.")
            return True
        self.set_project(project)
        return True

    def open_image_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open image", "", "Images (*.jpg *.jpeg *.png *.bmp *.tif *.tiff *.webp *.gif)")
        if path:
            self.open_path(path)

    def open_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open folder of images")
        if path:
            self.open_path(path)

    def open_project_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open project", "", f"Project ({PROJECT_FILE})")
        if path:
            self.open_path(path)

    def save(self) -> None:
        if self.project is not None and self.project.read_only:
            self.status(f"Not saved: the project is read-only ({self.project.read_only_reason}).")
            return
        if self.project is not None:
            try:
                self.project.save()
                self.status("Saved.")
                self.clear_error_banner()
            except OSError as exc:
                self.notify(f"Saving failed: {exc}", error=True)

    @property
    def entry(self):
        return self.project.images[self.index] if self.project and 0 <= self.index < len(self.project.images) else None

    def show_image(self, index: int) -> None:
        if self.project is None or not 0 <= index < len(self.project.images):
            return
        if index == self.index and self.image is not None:
            return
        if self.proposal is not None and self.proposal_from_bulk and not self.clicks and self.index >= 0:
            # An auto-segment proposal under review stays queued for when the person comes back.
            self.bulk.setdefault(self.index, []).insert(0, self.proposal)
        self.overview = False
        self.cancel_polygon_edit(quiet=True)
        self._clear_proposal(cancel=True)
        self.selected = []
        self.hidden = set()
        self.roi_rect = None
        self.canvas.set_roi_rect(None)
        self.index = index
        self.images_panel.set_current(index)
        entry = self.project.images[index]
        try:
            self.image = entry.read_image()
        except (ProjectError, OSError) as exc:
            self.image = None
            self.canvas.set_image(None)
            self.notify(str(exc), error=True)
            return
        self.canvas.set_image(self.image)
        self._refresh_overlay()
        if self.bulk.get(index):
            self._next_bulk_proposal()
        self._update_tool_panel()  # the old image's selection is gone: Delete / Merge must say so
        self.status(f"{entry.name}  ({index + 1}/{len(self.project.images)})")
        remember_image(self.project, entry.name)

    def next_image(self) -> None:
        if self.project and self.index + 1 < len(self.project.images):
            self.show_image(self.index + 1)

    def prev_image(self) -> None:
        if self.project and self.index > 0:
            self.show_image(self.index - 1)

    # ================================================================================ document events
    def _on_doc_event(self, event: str, image_index: int) -> None:
        # Coalesce bursts (accept all, undo chains) into one redraw on the next event-loop turn.
        if image_index < 0 or "categor" in event:
            self._dirty_categories = True
            self._dirty_overlay = True
        if image_index == self.index:
            self._dirty_overlay = True
        if image_index >= 0:
            self._dirty_list.add(image_index)
            if event in ("undo", "redo") and image_index != self.index:
                self._jump_to = image_index  # show the image the undone edit was on
        self._refresh_timer.start(0)

    def _flush_refresh(self) -> None:
        if self.project is None:
            return
        if self._jump_to is not None:
            jump, self._jump_to = self._jump_to, None
            self.show_image(jump)
        if self._dirty_categories:
            self._dirty_categories = False
            if self.category_id not in {c.id for c in self.project.categories}:
                self.category_id = self.project.categories[0].id if self.project.categories else None
            self._refresh_categories()
        if self._dirty_overlay:
            self._dirty_overlay = False
            entry = self.entry
            if entry is not None:
                self.selected = [s for s in self.selected if s in entry.segments]
            self._refresh_overlay()
        fr = [e.labelled_fraction() for e in self.project.images]
        for i in sorted(self._dirty_list):
            if 0 <= i < len(self.project.images):
                self.images_panel.update_image(i, self.project.images[i].name, fr[i], fr)
        self._dirty_list.clear()
        self._update_tool_panel()

    def _refresh_categories(self) -> None:
        self.categories_panel.set_categories(self.project.categories, self.category_id)

    def _refresh_image_list(self) -> None:
        imgs = self.project.images
        self.images_panel.set_images([e.name for e in imgs], [e.labelled_fraction() for e in imgs], self.index)

    def _refresh_overlay(self) -> None:
        entry = self.entry
        if entry is None or self.image is None:
            self.canvas.set_overlay(None)
            return
        cat_color = {c.id: c.color for c in self.project.categories}
        swatches = [c.color for c in self.project.categories]  # a segment colour never reads as a category
        colors = {sid: (segment_color(sid, swatches) if self.color_by == "segment" else
                        cat_color.get(s.category_id, (200, 200, 200)))
                  for sid, s in entry.segments.items()}
        self.hidden &= set(entry.segments)
        shown = {sid: c for sid, c in colors.items() if sid not in self.hidden}
        rgba = compose_overlay(np.asarray(entry.labels), shown, self.opacity, self.hatch, True)
        self.canvas.set_overlay(rgba)
        self._refresh_segment_list(entry, colors)
        self._refresh_selection()

    def _refresh_selection(self) -> None:
        """The selected segments' outlines and their rows in the list, without redrawing the overlay."""
        entry = self.entry
        if entry is None or self.image is None:
            self.canvas.set_selection([])
            return
        self.selected = [s for s in self.selected if s in entry.segments]
        labels = np.asarray(entry.labels)
        self.canvas.set_selection([c for sid in self.selected for c in outline_contours(labels == sid)])
        self.segments_panel.set_selected(set(self.selected))

    def _refresh_segment_list(self, entry, colors) -> None:
        from annotator.coco_io import segment_areas

        areas = segment_areas(np.asarray(entry.labels), entry.segments)  # one counting pass for all areas
        names = {c.id: c.name for c in self.project.categories}
        rows = [(sid, names.get(seg.category_id, "?"), areas.get(sid, 0), colors[sid])
                for sid, seg in sorted(entry.segments.items())]
        self.segments_panel.set_segments(rows, set(self.selected), self.hidden)

    def _on_segment_rows_selected(self, ids: list) -> None:
        self.selected = [int(i) for i in ids]
        self._refresh_selection()
        self._update_tool_panel()

    def set_segment_visible(self, segment_id: int, visible: bool) -> None:
        (self.hidden.discard if visible else self.hidden.add)(int(segment_id))
        self._refresh_overlay()

    def set_color_by(self, mode: str) -> None:
        """Colour segments by "segment" (each its own colour) or by "category"."""
        self.color_by = mode
        self._refresh_overlay()
        self.status("Colours: one per segment." if mode == "segment" else "Colours: by category.")

    def set_brush_radius(self, radius: int) -> None:
        self.brush_radius = int(np.clip(radius, 1, 200))
        self.canvas.set_brush_radius(self.brush_radius)
        if self.tools_panel.brush.value() != self.brush_radius:
            self.tools_panel.brush.setValue(self.brush_radius)

    # ================================================================================ categories
    def set_category(self, category_id: int) -> None:
        self.category_id = category_id
        if self.proposal is not None and self.proposal_from_bulk and not self.clicks:
            self.proposal_category = category_id  # this auto-segment proposal is accepted as that
        # Picking a category with segments selected (and no proposal) re-labels them.
        if self.selected and self.proposal is None and self.entry is not None:
            for sid in list(self.selected):
                self._edit(self.project.set_segment_category, self.index, sid, category_id)
        self._update_tool_panel()

    def pick_category_row(self, row: int) -> None:
        if self.project and 0 <= row < len(self.project.categories):
            self.categories_panel.select_row(row)
            self.set_category(self.project.categories[row].id)

    def add_category(self, name: Optional[str] = None, color=None, isthing: bool = True) -> Optional[int]:
        if self.project is None:
            return None
        if name is None:
            name, ok = QInputDialog.getText(self, "Add category", "Name:")
            if not ok or not name.strip():
                return None
            kind, ok = QInputDialog.getItem(self, "Add category", "Kind:", ["thing (countable)", "stuff"], 0, False)
            isthing = not ok or kind.startswith("thing")
        cid = self._edit(self.project.add_category, name.strip(), color, isthing)
        if cid is None:
            return None
        self.category_id = cid
        self._refresh_categories()
        return cid

    def rename_category(self, category_id: int, name: Optional[str] = None) -> None:
        if self.project is None:
            return
        if name is None:
            old = self.project.category(category_id).name
            name, ok = QInputDialog.getText(self, "Rename category", "Name:", text=old)
            if not ok or not name.strip():
                return
        self._edit(self.project.rename_category, category_id, name.strip())

    def recolor_category(self, category_id: int, color=None) -> None:
        if self.project is None:
            return
        if color is None:
            c = QColorDialog.getColor(QColor(*self.project.category(category_id).color), self, "Category colour")
            if not c.isValid():
                return
            color = (c.red(), c.green(), c.blue())
        self._edit(self.project.recolor_category, category_id, color)
        if self.color_by != "category":
            self.set_color_by("category")  # a new category colour is only seen in category colours

    def delete_category(self, category_id: int, move_to: Optional[int] = None) -> bool:
        """Delete a category. If segments use it they move to `move_to`, asked for when not given (a list of the
        other categories); Ctrl+Z undoes it all. False if nothing was deleted."""
        if self.project is None:
            return False
        cat = self.project.category(category_id)
        others = [c for c in self.project.categories if c.id != category_id]
        if not others:
            self.notify(f"'{cat.name}' is the last category: add another one before deleting it.", error=True)
            return False
        used = sum(1 for e in self.project.images for seg in e.segments.values() if seg.category_id == category_id)
        if used and move_to is None:
            names = [c.name for c in others]
            choice, ok = QInputDialog.getItem(
                self, "Delete category", f"'{cat.name}' is used by {used} segment{'s' if used != 1 else ''}. "
                "Move them to:", names, 0, False)
            if not ok:
                return False
            move_to = others[names.index(choice)].id
        try:
            moved = self._edit(self.project.delete_category, category_id, move_to if used else None)
        except ValueError as exc:
            self.notify(str(exc), error=True)
            return False
        if moved is None:  # read-only or not saved: _edit said so
            return False
        target = (f"; {moved} segment{'s' if moved != 1 else ''} moved to '{self.project.category(move_to).name}'"
                  if moved else "")
        self.status(f"Deleted category '{cat.name}'{target} (Ctrl+Z undoes it).")
        return True

    def _ensure_category(self) -> Optional[int]:
        if self.project is None:
            return None
        ids = {c.id for c in self.project.categories}
        if self.category_id in ids:
            return self.category_id
        if self.project.categories:
            self.category_id = self.project.categories[0].id
        else:
            self.category_id = self._edit(self.project.add_category, "object")  # None if read-only
        self._refresh_categories()
        return self.category_id

    # ================================================================================ ROI
    def current_roi(self) -> Optional[np.ndarray]:
        """Where the net may put the proposal: unlabelled pixels (default), whole image, or a drawn box."""
        entry = self.entry
        if self.roi_mode == "whole":
            return None
        roi = entry.unlabelled_mask().copy()
        if self.roi_mode == "rect" and self.roi_rect is not None:
            x0, y0, x1, y1 = self.roi_rect
            box = np.zeros_like(roi)
            box[y0:y1, x0:x1] = True
            roi &= box
        return roi

    def set_roi_mode(self, mode: str) -> None:
        self.roi_mode = mode
        if mode == "rect" and self.roi_rect is None:
            self.set_tool("roi")
            self.status("Drag a box on the image to set the ROI.")
        self.canvas.set_roi_rect(self.roi_rect if mode == "rect" else None)
        i = self.tools_panel.roi_mode.findData(mode)
        if i >= 0 and self.tools_panel.roi_mode.currentIndex() != i:
            self.tools_panel.roi_mode.setCurrentIndex(i)

    def clear_roi_box(self) -> bool:
        """Drop the drawn box and its ROI (back to the unlabelled area); True if there was one."""
        had = self.roi_rect is not None or self.roi_mode == "rect"
        self.roi_rect = None
        if self.roi_mode == "rect":
            self.set_roi_mode("unlabelled")
        self.canvas.set_roi_rect(None)
        if self.tool == "roi":
            self.set_tool("click")
        return had

    def on_roi_drawn(self, x0: int, y0: int, x1: int, y1: int) -> None:
        if self.image is None:
            return
        h, w = self.image.shape[:2]
        x0, x1 = max(0, min(x0, w)), max(0, min(x1, w))
        y0, y1 = max(0, min(y0, h)), max(0, min(y1, h))
        if x1 - x0 < 2 or y1 - y0 < 2:
            return
        self.roi_rect = (x0, y0, x1, y1)
        self.set_roi_mode("rect")
        self.set_tool("click")
        if not self.clicks and self.entry is not None and not self.overview:
            self._box_to_mask()

    def _box_to_mask(self) -> None:
        """Box prompt, as SAM-based tools have it: the box is the ROI and the net is pointed at the interior-most
        unlabelled point of the box; the click loop then corrects the result inside the box."""
        import cv2

        roi = self.current_roi()
        if roi is None or not roi.any():
            self.status("The box holds no unlabelled pixel.")
            return
        dist = cv2.distanceTransform(np.pad(roi.astype(np.uint8), 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
        y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
        self.selected = []
        self.clicks = [(int(x), int(y), True)]
        self._request_prediction()

    # ================================================================================ tools / display
    def set_tool(self, tool: str) -> None:
        self.tool = tool
        self.canvas.set_tool(tool)
        self.tools_panel.set_tool(tool)
        self._stroke = None
        self.canvas.set_stroke(None)

    def set_opacity(self, value: float) -> None:
        self.opacity = float(np.clip(value, 0.0, 1.0))
        v = int(round(self.opacity * 100))
        if self.tools_panel.opacity.value() != v:
            self.tools_panel.opacity.setValue(v)
        self._refresh_overlay()

    def set_hatch(self, on: bool) -> None:
        self.hatch = bool(on)
        if self.tools_panel.hatch.isChecked() != self.hatch:
            self.tools_panel.hatch.setChecked(self.hatch)
        self._refresh_overlay()

    def _update_tool_panel(self) -> None:
        queued = len(self.bulk.get(self.index, []))
        if self.polygon_edit is not None:
            text = self.polygon_hint()
        elif self.overview:
            text = (f"Overview: {queued} auto-segment proposals. Click a wrong one to drop it; Enter accepts all "
                    "the rest; V or Esc reviews them one by one.")
        elif self.proposal is not None and not self.proposal.any():
            text = "The net found nothing there: click elsewhere to try again, Esc to start over."
        elif self.proposal is not None:
            src = "auto-segment proposal" if self.proposal_from_bulk and not self.clicks else "proposal"
            score = f", score {self.proposal_score:.2f}" if self.proposal_score is not None else ""
            text = (f"{src.capitalize()}: {int(self.proposal.sum())} px{score}. "
                    "Enter/A accept, Esc/R reject; left/right click to refine.")
            if self.clicks and self.readings_count > 1:
                text += f" Tab: another reading ({self.reading + 1}/{self.readings_count})."
            if queued:
                text += f" {queued} more queued."
            if self.pending is not None:
                text += " Refining…"
        elif self.pending is not None:
            text = "Predicting…"
        elif self.selected:
            text = (f"Selected segment(s) {', '.join(map(str, self.selected))}: M merge, Del delete, P outline, "
                    "1-9 set category, B/E paint.")
        else:
            text = "Left click the image to segment (right click / Shift+click = negative)."
        auto = self.overview or (self.proposal is not None and self.proposal_from_bulk and not self.clicks)
        if self.project is not None and auto:
            text += f"\nCategory: {self._auto_proposal_category_text()}"
        elif self.project is not None and self.category_id is not None:
            try:
                text += f"\nCategory: {self.project.category(self.category_id).name}"
            except KeyError:
                pass
        acceptable = self.proposal is not None and bool(self.proposal.any())  # 0 px: nothing to accept
        self.tools_panel.set_state(text, acceptable, queued)

    # ================================================================================ keys
    def keyPressEvent(self, ev) -> None:  # noqa: N802
        key, mods = ev.key(), ev.modifiers()
        ctrl, shift = bool(mods & Qt.ControlModifier), bool(mods & Qt.ShiftModifier)
        text = ev.text()
        if self.polygon_edit_key(ev):
            return
        if ctrl:
            if key == Qt.Key_Z:
                self.redo() if shift else self.undo()
            elif key == Qt.Key_Y:
                self.redo()
            elif key == Qt.Key_S:
                self.save()
            elif key == Qt.Key_Q:
                self.close()
            elif key == Qt.Key_A and shift:
                self.auto_segment()
            elif key == Qt.Key_O:
                self.open_project_dialog()
            else:
                return super().keyPressEvent(ev)
            return
        if key in (Qt.Key_Return, Qt.Key_Enter):
            self.accept_all() if shift or self.overview else self.accept_proposal()
        elif key == Qt.Key_A:
            # A accepts while a proposal is shown or being predicted, otherwise it is "previous image" (A / D).
            busy = self.pending is not None and bool(self.clicks)
            self.accept_proposal() if self.proposal is not None or busy else self.prev_image()
        elif key == Qt.Key_K:
            self.set_color_by("category" if self.color_by == "segment" else "segment")
        elif key == Qt.Key_V:
            self.toggle_overview()
        elif key == Qt.Key_Comma:
            self.set_brush_radius(max(1, round(self.brush_radius / 1.25)))
        elif key == Qt.Key_Period:
            self.set_brush_radius(round(self.brush_radius * 1.25) + 1)
        elif key == Qt.Key_W:
            self.set_roi_mode("unlabelled" if self.roi_mode == "whole" else "whole")
            self.status("ROI: whole image — a new segment may take pixels from other segments." if
                        self.roi_mode == "whole" else "ROI: unlabelled area — new segments take only unlabelled "
                        "pixels.")
        elif key in (Qt.Key_Escape, Qt.Key_R) and self.overview:
            self.toggle_overview()
        elif key in (Qt.Key_Escape, Qt.Key_R):
            if self.proposal is None and not self.clicks and self.selected:
                self.selected = []
                self._refresh_selection()
                self._update_tool_panel()
            elif self.proposal is None and not self.clicks and self.roi_rect is not None:
                self.clear_roi_box()
                self.status("ROI box cleared.")
            else:
                self.reject_proposal()
        elif key in (Qt.Key_D, Qt.Key_PageDown):
            self.next_image()
        elif key == Qt.Key_PageUp:
            self.prev_image()
        elif Qt.Key_1 <= key <= Qt.Key_9:
            self.pick_category_row(key - Qt.Key_1)
        elif text == "?" or key == Qt.Key_Question or key == Qt.Key_F1:
            self.overlay_help.toggle()
        elif key == Qt.Key_F:
            self.canvas.fit()
        elif key in (Qt.Key_Plus, Qt.Key_Equal):
            self.canvas.zoom(1.25)
        elif key == Qt.Key_Minus:
            self.canvas.zoom(0.8)
        elif key == Qt.Key_C:
            self.set_tool("click")
        elif key == Qt.Key_B:
            self.set_tool("brush")
        elif key == Qt.Key_E:
            self.set_tool("erase")
        elif key == Qt.Key_O:
            self.set_tool("roi")
        elif key == Qt.Key_M:
            self.merge_selected()
        elif key == Qt.Key_G:
            self.fill_gaps()
        elif key == Qt.Key_P:
            self.start_polygon_edit()
        elif key in (Qt.Key_Delete, Qt.Key_Backspace):
            self.delete_selected()
        elif key == Qt.Key_BracketLeft:
            self.set_opacity(self.opacity - 0.1)
        elif key == Qt.Key_BracketRight:
            self.set_opacity(self.opacity + 0.1)
        elif key == Qt.Key_H:
            self.set_hatch(not self.hatch)
        else:
            super().keyPressEvent(ev)

    def resizeEvent(self, ev) -> None:  # noqa: N802
        super().resizeEvent(ev)
        if self.overlay_help.isVisible():
            self.overlay_help.fit()

    def closeEvent(self, ev) -> None:  # noqa: N802
        run = self.finetune_run
        if run is not None and run.running:
            # Stop cleanly (the run keeps its weights so far); a run that does not stop in time is killed.
            run.cancel()
            if not run.wait(5000):
                run.kill()
                run.wait(2000)
        self.discard_finetune_run()  # weights nobody chose to use do not outlive the window
        if self._bulk_req is not None:
            self.worker.cancel()
        self.worker.stop()
        if self.project is not None:
            self._close_project(self.project)
        super().closeEvent(ev)

    def _close_project(self, project: Project) -> None:
        """Save what is unsaved and release the project's write lock (a read-only project has none)."""
        try:
            project.close()
        except (OSError, ProjectError) as exc:
            self.messages.append(f"Closing {project.project_dir} failed: {exc}")


def _bundled_weights_path() -> Optional[str]:
    """The bundled weights file the default segmenter loads (model/ imported lazily, may be broken)."""
    try:
        from model.segmenter import BUNDLED_WEIGHTS
    except Exception:
        return None
    return str(BUNDLED_WEIGHTS)


def cannot_open_text(path: str, exc: BaseException) -> str:
    """"Cannot open PATH: why". The errors of the readers already start with the file they are about; that path
    is not said twice ("Cannot open a.jpg: a.jpg: not a readable image"). An error about another file (a
    project.json inside a folder) keeps its own path."""
    why = str(exc)
    for said in dict.fromkeys((path, os.fspath(Path(path)), os.path.abspath(path))):
        if why.startswith(f"{said}: "):
            return f"Cannot open {path}: {why[len(said) + 2:]}"
    return f"Cannot open {path}:\n{why}"


def opening_problems_text(problems: List[str], listed: int = 10) -> str:
    """One message for the problems found when a project opened (unreadable images skipped, missing files, ...):
    the first line counts them, each of the first `listed` has a line of its own, ended by ";" so that the
    banner, which joins the lines, still reads as a list."""
    if len(problems) == 1:
        return problems[0]
    shown = problems[:listed] + ([f"and {len(problems) - listed} more"] if len(problems) > listed else [])
    return "\n".join([f"{len(problems)} problems on opening:"] + [f"{p};" for p in shown[:-1]] + shown[-1:])


def open_project_for(path: str, project_dir: Optional[str] = None) -> Project:
    """Project for a command-line / dialog path.

    * a project folder or its project.json -> opened (errors raised, file untouched); read-only, with the
      reason in ``warnings``, when another process holds its lock;
    * a folder of images -> a new project stored in that folder (or ``project_dir``), reopened next time;
    * an image file -> a new project in ``<image stem>.annot/`` beside it (or ``project_dir``);
    * a COCO panoptic JSON (e.g. ``main.py auto`` output) -> imported into ``<json stem>.annot/`` beside it
      (or ``project_dir``) the first time, reopened after.
    """
    p = Path(path)
    if not p.exists():
        raise ProjectError(f"{p}: no such file or folder")
    if p.is_file() and p.name == PROJECT_FILE:
        return Project.open(p.parent, fallback_read_only=True)
    if p.is_dir():
        target = Path(project_dir) if project_dir else p
        if (p / PROJECT_FILE).exists():
            return Project.open(p, fallback_read_only=True)
        if (target / PROJECT_FILE).exists():
            return Project.open(target, fallback_read_only=True)
        from annotator.document import list_images, no_images_message

        if not list_images(p):  # nothing to label: say so rather than leave an empty project behind
            raise ProjectError(no_images_message(p, also=", and no project"))
        return Project.new(p, target)
    if p.suffix.lower() == ".json":
        if p.name == PROJECT_FILE:
            return Project.open(p.parent, fallback_read_only=True)
        return _open_coco_json(p, project_dir)
    target = Path(project_dir) if project_dir else p.with_name(p.stem + ".annot")
    if (target / PROJECT_FILE).exists():
        return Project.open(target, fallback_read_only=True)
    read_image_checked(p)  # before creating a project folder for it: ProjectError says why (corrupt, too large)
    return Project.new([p], target)


def _open_coco_json(p: Path, project_dir: Optional[str] = None) -> Project:
    """A COCO panoptic JSON (an export, or `main.py auto` results) opens as a project stored beside it in
    ``<stem>.annot/`` (or ``project_dir``): imported the first time, reopened after, so corrections persist."""
    import json

    from annotator.coco_io import import_coco_panoptic

    target = Path(project_dir) if project_dir else p.with_name(p.stem + ".annot")
    if (target / PROJECT_FILE).exists():
        return Project.open(target, fallback_read_only=True)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProjectError(f"{p}: not a readable JSON file ({exc})") from None
    if not (isinstance(data, dict) and "annotations" in data and "categories" in data):
        raise ProjectError(f"{p}: a JSON file that is neither a project ({PROJECT_FILE}) nor COCO panoptic "
                           "(no 'annotations' / 'categories')")
    return import_coco_panoptic(p, project_dir=target)


VIEW_STATE_FILE = ".annotator-view.json"  # where the window was (not annotation data: never exported)


def remember_image(project: Project, name: str) -> None:
    """Note the image shown, so the project reopens on it (best effort: a read-only folder just forgets)."""
    import json

    from annotator.document import atomic_write_bytes

    try:
        atomic_write_bytes(Path(project.project_dir) / VIEW_STATE_FILE, json.dumps({"image": name}).encode())
    except OSError:
        pass


def remembered_image(project: Project) -> Optional[str]:
    import json

    try:
        data = json.loads((Path(project.project_dir) / VIEW_STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("image") if isinstance(data, dict) and isinstance(data.get("image"), str) else None
