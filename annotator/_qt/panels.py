"""Side panels: categories, image list with progress, proposal review / segment tools."""
from __future__ import annotations

from typing import Iterable, Optional

from PyQt5.QtCore import QModelIndex, QSize, Qt, pyqtSignal
from PyQt5.QtGui import QColor, QIcon, QPixmap
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QSlider,
    QSpinBox,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
)


def color_icon(rgb) -> QIcon:
    pm = QPixmap(14, 14)
    pm.fill(QColor(*[int(c) for c in rgb]))
    return QIcon(pm)


LIST_MIN_HEIGHT = 44  # about two rows; the lists stretch into whatever height the window has


def compact_column(box: QGroupBox) -> QVBoxLayout:
    """A group box's column with tighter margins and spacing than the style's (9-11 px each): four boxes stacked
    in the side column, and the pixels go to the lists' rows."""
    lay = QVBoxLayout(box)
    lay.setContentsMargins(6, 4, 6, 6)
    lay.setSpacing(4)
    return lay


HINT_LINES = 4  # the proposal hint's room, in lines: most hints (a proposal, its category) fit in it


class CategoryPanel(QGroupBox):
    """List of categories; the current one is used when accepting. Keys 1-9 pick the first nine."""

    picked = pyqtSignal(int)  # category id
    add_requested = pyqtSignal()
    rename_requested = pyqtSignal(int)
    recolor_requested = pyqtSignal(int)
    delete_requested = pyqtSignal(int)
    isthing_requested = pyqtSignal(int, bool)  # category id, countable thing (else stuff)

    def __init__(self, parent=None) -> None:
        super().__init__("Categories", parent)
        self.list = QListWidget()
        self.list.setMinimumHeight(LIST_MIN_HEIGHT)
        self.list.setFocusPolicy(Qt.NoFocus)  # keys stay with the window (shortcuts)
        self.list.currentItemChanged.connect(self._on_current)
        self.list.itemDoubleClicked.connect(lambda it: self.rename_requested.emit(it.data(Qt.UserRole)))
        # Right click: every category action, and thing / stuff, which decides the COCO exports' isthing.
        self.list.setContextMenuPolicy(Qt.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._show_menu)
        add = QPushButton("Add")
        rename = QPushButton("Rename")
        recolor = QPushButton("Colour")
        self.delete_btn = QPushButton("Delete")
        self.delete_btn.setToolTip("Delete this category; its segments move to another one (Ctrl+Z undoes it)")
        for b in (add, rename, recolor, self.delete_btn):
            b.setFocusPolicy(Qt.NoFocus)
            b.setMinimumWidth(40)  # four buttons share the row: they must not widen the side panel
        add.clicked.connect(self.add_requested)
        rename.clicked.connect(lambda: self.current_id() is not None and self.rename_requested.emit(self.current_id()))
        recolor.clicked.connect(
            lambda: self.current_id() is not None and self.recolor_requested.emit(self.current_id())
        )
        self.delete_btn.clicked.connect(
            lambda: self.current_id() is not None and self.delete_requested.emit(self.current_id()))
        row = QHBoxLayout()
        for b in (add, rename, recolor, self.delete_btn):
            row.addWidget(b)
        lay = compact_column(self)
        lay.addWidget(self.list)
        lay.addLayout(row)
        self._updating = False

    def set_categories(self, categories: Iterable, current: Optional[int]) -> None:
        self._updating = True
        self.list.clear()
        for i, c in enumerate(categories):
            key = f"{i + 1}  " if i < 9 else "   "
            kind = "" if getattr(c, "isthing", True) else "  (stuff)"
            it = QListWidgetItem(color_icon(c.color), f"{key}{c.name}{kind}")
            it.setData(Qt.UserRole, c.id)
            self.list.addItem(it)
            if c.id == current:
                self.list.setCurrentItem(it)
        self._updating = False

    def current_id(self) -> Optional[int]:
        it = self.list.currentItem()
        return None if it is None else it.data(Qt.UserRole)

    def menu_for(self, category_id: int, isthing: bool) -> QMenu:
        """The right-click menu of one category."""
        menu = QMenu(self)
        menu.addAction("Rename…", lambda: self.rename_requested.emit(category_id))
        menu.addAction("Colour…", lambda: self.recolor_requested.emit(category_id))
        thing = menu.addAction("Countable thing (unticked: stuff)")
        thing.setCheckable(True)
        thing.setChecked(isthing)
        thing.toggled.connect(lambda on: self.isthing_requested.emit(category_id, on))
        menu.addSeparator()
        menu.addAction("Delete…", lambda: self.delete_requested.emit(category_id))
        return menu

    def _show_menu(self, pos) -> None:
        item = self.list.itemAt(pos)
        if item is not None:
            isthing = not item.text().endswith("(stuff)")
            self.menu_for(item.data(Qt.UserRole), isthing).exec_(self.list.viewport().mapToGlobal(pos))

    def select_row(self, row: int) -> None:
        if 0 <= row < self.list.count():
            self.list.setCurrentRow(row)

    def _on_current(self, item, _prev) -> None:
        if item is not None and not self._updating:
            self.picked.emit(item.data(Qt.UserRole))


class SegmentListPanel(QGroupBox):
    """The current image's segments: colour, id, category, area; a tick box shows / hides each one, clicking a
    row selects it on the canvas (Ctrl for several), Delete removes the selected ones."""

    selection_changed = pyqtSignal(list)   # selected segment ids
    visibility_changed = pyqtSignal(int, bool)  # segment id, visible
    delete_requested = pyqtSignal()
    merge_requested = pyqtSignal()

    def __init__(self, parent=None) -> None:
        super().__init__("Segments", parent)
        self.list = QListWidget()
        self.list.setMinimumHeight(LIST_MIN_HEIGHT)
        self.list.setFocusPolicy(Qt.NoFocus)
        self.list.setSelectionMode(QListWidget.ExtendedSelection)
        self.list.itemSelectionChanged.connect(self._on_selection)
        self.list.itemChanged.connect(self._on_item_changed)
        # Merge and Delete act on the selected segments, so they sit under the list that shows the selection
        # (they were a row of the tool box too, which the lists' rows need at 1280x800).
        self.merge_btn = QPushButton("Merge (M)")
        self.merge_btn.setToolTip("Merge the two selected segments into one")
        self.merge_btn.clicked.connect(self.merge_requested)
        self.delete_btn = QPushButton("Delete")
        self.delete_btn.setToolTip("Delete the selected segments (Del)")
        self.delete_btn.clicked.connect(self.delete_requested)
        for b in (self.merge_btn, self.delete_btn):
            b.setFocusPolicy(Qt.NoFocus)
            b.setEnabled(False)
        self.summary = QLabel("")
        row = QHBoxLayout()
        row.addWidget(self.summary, 1)
        row.addWidget(self.merge_btn)
        row.addWidget(self.delete_btn)
        lay = compact_column(self)
        lay.addWidget(self.list)
        lay.addLayout(row)
        self._updating = False

    def set_segments(self, rows, selected, hidden) -> None:
        """rows: [(segment id, category name, area px, (r, g, b))]."""
        self._updating = True
        same = [self.list.item(r).data(Qt.UserRole) for r in range(self.list.count())] == [r[0] for r in rows]
        if not same:  # rebuilt only when the segments change: a selection keeps the rows (and the scroll)
            self.list.clear()
        for r, (sid, cat, area, color) in enumerate(rows):
            text = f"#{sid}  {cat}  {area} px"
            if same:
                it = self.list.item(r)
                if it.text() != text:
                    it.setText(text)
                it.setIcon(color_icon(color))
            else:
                it = QListWidgetItem(color_icon(color), text)
                it.setData(Qt.UserRole, int(sid))
                it.setFlags(it.flags() | Qt.ItemIsUserCheckable)
                self.list.addItem(it)
            state = Qt.Unchecked if sid in hidden else Qt.Checked
            if it.checkState() != state:
                it.setCheckState(state)
            if it.isSelected() != (sid in selected):
                it.setSelected(sid in selected)
        self.summary.setText(f"{len(rows)} segment(s)")
        self._enable_buttons(len(selected))
        self._updating = False

    def _enable_buttons(self, n_selected: int) -> None:
        self.merge_btn.setEnabled(n_selected == 2)
        self.delete_btn.setEnabled(n_selected >= 1)

    def set_selected(self, selected) -> None:
        """Mark these segment ids selected in the list (the rows themselves stay)."""
        self._updating = True
        for r in range(self.list.count()):
            it = self.list.item(r)
            want = it.data(Qt.UserRole) in selected
            if it.isSelected() != want:
                it.setSelected(want)
        self._enable_buttons(len(selected))
        self._updating = False

    def row_of(self, segment_id: int) -> int:
        for r in range(self.list.count()):
            if self.list.item(r).data(Qt.UserRole) == segment_id:
                return r
        return -1

    def _on_selection(self) -> None:
        if not self._updating:
            ids = [it.data(Qt.UserRole) for it in self.list.selectedItems()]
            self._enable_buttons(len(ids))
            self.selection_changed.emit(ids)

    def _on_item_changed(self, item) -> None:
        if not self._updating:
            self.visibility_changed.emit(item.data(Qt.UserRole), item.checkState() == Qt.Checked)


_ROW_PREFIX, _ROW_NAME = Qt.UserRole + 1, Qt.UserRole + 2
_ROW_TEXT_MARGIN = 8  # the style's padding around an item's text


class _ImageRowDelegate(QStyledItemDelegate):
    """Rows as wide as the list, with the file name elided in its middle, never the progress or the review count
    in front of it. Rows as wide as their text had pushed the count of a camera-length name out of sight behind
    a sideways scroll bar (seen in the window under Xvfb)."""

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        return QSize(1, super().sizeHint(option, index).height())

    def initStyleOption(self, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        super().initStyleOption(option, index)
        option.text = self.shown_text(option, index, option.rect.width())

    @staticmethod
    def shown_text(option: QStyleOptionViewItem, index: QModelIndex, width: int) -> str:
        prefix, name = index.data(_ROW_PREFIX), index.data(_ROW_NAME)
        if prefix is None or name is None:
            return option.text
        fm = option.fontMetrics
        room = width - _ROW_TEXT_MARGIN - fm.horizontalAdvance(prefix)
        return prefix + fm.elidedText(name, Qt.ElideMiddle, max(0, room))


class ImageListPanel(QGroupBox):
    """Images of the project with their labelled fraction."""

    picked = pyqtSignal(int)  # image index

    def __init__(self, parent=None) -> None:
        super().__init__("Images", parent)
        self.list = QListWidget()
        self.list.setMinimumHeight(LIST_MIN_HEIGHT)
        self.list.setFocusPolicy(Qt.NoFocus)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.list.setItemDelegate(_ImageRowDelegate(self.list))
        self.list.currentRowChanged.connect(self._on_row)
        self.summary = QLabel("")
        lay = compact_column(self)
        lay.addWidget(self.list)
        lay.addWidget(self.summary)
        self._updating = False

    @staticmethod
    def _set_row(item: QListWidgetItem, name: str, frac: float, proposals: int = 0) -> None:
        queued = f"[{proposals} to review]  " if proposals else ""
        prefix = f"{frac * 100:5.1f}%  {queued}"
        item.setText(prefix + name)
        item.setData(_ROW_PREFIX, prefix)
        item.setData(_ROW_NAME, name)
        item.setToolTip(f"{name}\n{frac * 100:.1f}% labelled" + (f", {proposals} proposals to review" if proposals
                                                                 else ""))

    def shown_text(self, row: int) -> str:
        """The row's text as painted at the list's current width (the name elided to fit)."""
        item = self.list.item(row)
        option = QStyleOptionViewItem()
        option.initFrom(self.list.viewport())
        option.text = item.text()
        return _ImageRowDelegate.shown_text(option, self.list.indexFromItem(item),
                                            self.list.visualItemRect(item).width())

    def set_proposal_counts(self, names, fractions, counts: dict) -> None:
        """Mark the images that still hold auto-segment proposals (``counts``: index -> number)."""
        for i, (name, f) in enumerate(zip(names, fractions)):
            it = self.list.item(i)
            if it is not None:
                self._set_row(it, name, f, counts.get(i, 0))
        self._counts = dict(counts)

    def set_images(self, names, fractions, current: int) -> None:
        self._updating = True
        self.list.clear()
        for i, (name, f) in enumerate(zip(names, fractions)):
            item = QListWidgetItem()
            self._set_row(item, name, f, getattr(self, "_counts", {}).get(i, 0))
            self.list.addItem(item)
        if 0 <= current < self.list.count():
            self.list.setCurrentRow(current)
        self._updating = False
        self._summarize(fractions)

    def update_image(self, index: int, name: str, frac: float, fractions) -> None:
        it = self.list.item(index)
        if it is not None:
            self._set_row(it, name, frac, getattr(self, "_counts", {}).get(index, 0))
        self._summarize(fractions)

    def set_current(self, index: int) -> None:
        self._updating = True
        self.list.setCurrentRow(index)
        self._updating = False

    def _summarize(self, fractions) -> None:
        fr = list(fractions)
        done = sum(1 for f in fr if f >= 0.999)
        mean = sum(fr) / len(fr) if fr else 0.0
        self.summary.setText(f"{len(fr)} images, {done} complete, {mean * 100:.1f}% labelled")

    def _on_row(self, row: int) -> None:
        if row >= 0 and not self._updating:
            self.picked.emit(row)


class WrappedLabel(QLabel):
    """A word-wrapped label whose minimum height follows its text at its current width. A plain QLabel with word
    wrap reports the height of a wider layout, so a box with no stretch, beside lists that stretch, showed only
    the first lines of a three-line hint (seen in the window under Xvfb). It keeps room for at least `min_lines`
    lines, so a text that wraps onto one line more or less does not move what is below it."""

    def __init__(self, text: str = "", parent=None, min_lines: int = 1) -> None:
        super().__init__(text, parent)
        self.setWordWrap(True)
        self.min_lines = max(1, int(min_lines))

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        super().setText(text)
        self._fit()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        need = self.heightForWidth(max(1, self.width()))
        if self.min_lines > 1:  # measured as the text is: Qt's rich-text layout adds to the font's line spacing
            probe = QLabel("\n".join(["X"] * self.min_lines))
            probe.setFont(self.font())
            probe.setWordWrap(True)
            need = max(need, probe.heightForWidth(max(1, self.width())))
        if need > 0 and need != self.minimumHeight():
            self.setMinimumHeight(need)


class ToolPanel(QGroupBox):
    """Proposal review, the click / brush / box tools, the ROI and display options."""

    accept = pyqtSignal()
    reject = pyqtSignal()
    accept_all = pyqtSignal()
    tool_changed = pyqtSignal(str)
    roi_mode_changed = pyqtSignal(str)
    opacity_changed = pyqtSignal(float)
    hatch_changed = pyqtSignal(bool)
    brush_size_changed = pyqtSignal(int)

    def __init__(self, parent=None) -> None:
        super().__init__("Proposal && tools", parent)
        # Room for HINT_LINES lines whatever the hint: the buttons and lists below stay put while hints change.
        self.info = WrappedLabel("Click the image to segment.", min_lines=HINT_LINES)
        # The keys are in the hint above ("Enter/A accept, Esc/R reject") and the tooltips: three buttons then fit
        # one row of the side column at its old width.
        self.accept_btn = QPushButton("Accept")
        self.accept_btn.setToolTip("Accept the proposal (Enter or A)")
        self.reject_btn = QPushButton("Reject")
        self.reject_btn.setToolTip("Reject the proposal (Esc or R)")
        self.accept_all_btn = QPushButton("Accept all (999)")
        # As wide as its longest label from the start (an image gets at most 50 proposals): a count appearing
        # must not widen the side panel.
        self.accept_all_btn.setMinimumWidth(self.accept_all_btn.sizeHint().width())
        self.accept_all_btn.setText("Accept all")
        self.accept_all_btn.setToolTip("Accept all remaining auto-segment proposals of this image (Shift+Enter)")
        self.accept_btn.clicked.connect(self.accept)
        self.reject_btn.clicked.connect(self.reject)
        self.accept_all_btn.clicked.connect(self.accept_all)

        self.tool = QComboBox()
        for name, label in (("click", "Click (C)"), ("brush", "Brush (B)"), ("erase", "Eraser (E)"), ("roi", "ROI box (O)")):
            self.tool.addItem(label, name)
        self.tool.currentIndexChanged.connect(lambda i: self.tool_changed.emit(self.tool.itemData(i)))
        self.brush = QSpinBox()
        self.brush.setRange(1, 200)
        self.brush.setValue(8)
        self.brush.setPrefix("brush radius ")
        self.brush.valueChanged.connect(self.brush_size_changed)

        self.roi_mode = QComboBox()
        for name, label in (("unlabelled", "ROI: unlabelled area"), ("whole", "ROI: whole image"), ("rect", "ROI: drawn box")):
            self.roi_mode.addItem(label, name)
        self.roi_mode.currentIndexChanged.connect(lambda i: self.roi_mode_changed.emit(self.roi_mode.itemData(i)))

        self.opacity = QSlider(Qt.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(45)
        self.opacity.valueChanged.connect(lambda v: self.opacity_changed.emit(v / 100.0))
        self.hatch = QCheckBox("Hatch unlabelled")
        self.hatch.setChecked(True)
        self.hatch.toggled.connect(self.hatch_changed)

        for w in (self.accept_btn, self.reject_btn, self.accept_all_btn, self.tool, self.brush, self.roi_mode,
                  self.opacity, self.hatch):
            w.setFocusPolicy(Qt.NoFocus)

        # Rows share buttons and fields so the tool box leaves the lists below room for several rows each at the
        # default 1280x800 (Categories showed 2 rows, Segments 3.5).
        lay = compact_column(self)
        lay.addWidget(self.info)
        row = QHBoxLayout()
        for b in (self.accept_btn, self.reject_btn, self.accept_all_btn):
            row.addWidget(b)
        lay.addLayout(row)
        row_tool = QHBoxLayout()
        row_tool.addWidget(self.tool, 1)
        row_tool.addWidget(self.brush, 1)
        lay.addLayout(row_tool)
        lay.addWidget(self.roi_mode)
        # Opacity and hatch share a row: the side column then fits a 1280x800 window without scrolling.
        row_view = QHBoxLayout()
        row_view.addWidget(QLabel("Opacity"))
        row_view.addWidget(self.opacity, 1)
        row_view.addWidget(self.hatch)
        lay.addLayout(row_view)

    def set_state(self, text: str, has_proposal: bool, queued: int) -> None:
        self.info.setText(text)
        self.accept_btn.setEnabled(has_proposal)
        self.reject_btn.setEnabled(has_proposal)
        self.accept_all_btn.setEnabled(queued > 0)
        self.accept_all_btn.setText(f"Accept all ({queued + int(has_proposal)})" if queued else "Accept all")

    def set_tool(self, tool: str) -> None:
        i = self.tool.findData(tool)
        if i >= 0 and i != self.tool.currentIndex():
            self.tool.setCurrentIndex(i)
