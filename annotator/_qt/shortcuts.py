"""Keyboard shortcut table and the help overlay shown with '?'."""
from __future__ import annotations

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QColor, QPainter
from PyQt5.QtWidgets import QLabel, QVBoxLayout, QWidget

# (keys, action): the single source for the overlay text and the README.
SHORTCUTS = [
    ("Left click", "Positive click: start / grow the proposal (click on a labelled pixel selects its segment)"),
    ("Right click, Shift+click", "Negative click: remove that part from the proposal"),
    ("Ctrl+click", "Add / remove a labelled segment to the selection (for merge / delete / brush)"),
    ("Enter, A (while a proposal is shown or being predicted)",
     "Accept the proposal with the current category (pressed during a prediction: accepted as soon as it arrives)"),
    ("Esc, R", "Reject the proposal (Esc also clears the selection)"),
    ("Tab", "Another reading of the click (a part or the whole), when the net has more than one"),
    ("Shift+Enter", "Accept all remaining auto-segment proposals"),
    ("V", "All proposals of the image at once: click to drop one, Enter accepts the rest"),
    ("K", "Colour by segment / by category"),
    ("W", "ROI: unlabelled area / whole image (a new segment may take pixels from others)"),
    (", / .", "Brush radius smaller / larger (a circle under the mouse shows it)"),
    ("D, PgDn", "Next image"),
    ("A (no proposal), PgUp", "Previous image"),
    ("1 - 9", "Pick category 1-9"),
    ("Right click a category", "Rename, colour, thing / stuff, delete (its segments move to another category)"),
    ("Ctrl+Z", "Undo (while refining a proposal: remove its last click); the status bar says what was undone"),
    ("Ctrl+Shift+Z, Ctrl+Y", "Redo"),
    ("Ctrl+Shift+A", "Auto-segment this image"),
    ("C / B / E / O", "Tool: click / brush / eraser / box (drag a box: its segment is proposed, the box is the ROI)"),
    ("M", "Merge the two selected segments"),
    ("G", "Fill the thin unlabelled gaps between segments from the nearest segment (wider areas stay)"),
    ("P", "Edit the selected segment's outline as polygons: drag a vertex, click or drag an edge to add one, "
          "right click or Delete removes one, Enter accepts (one undo step), Esc cancels"),
    ("Delete", "Delete the selected segment(s)"),
    ("F", "Fit image to window (wheel zooms, drag pans)"),
    ("+ / -", "Zoom in / out"),
    ("[ / ]", "Overlay opacity down / up"),
    ("H", "Toggle hatching of the unlabelled area"),
    ("Ctrl+S", "Save (edits are also saved automatically)"),
    ("Ctrl+O", "Open a project (its project.json)"),
    ("Ctrl+Q", "Quit (everything accepted is already saved)"),
    ("?, F1", "Show / hide this help"),
]


FONT_PX = (13, 12, 11, 10)  # the overlay's text sizes, largest first


class ShortcutsOverlay(QWidget):
    """Semi-transparent panel over the main window listing every shortcut; any key or click hides it.

    The list is laid out as two pairs of columns whose descriptions wrap: as one table of unwrapped rows it was
    1560 px wide, so in a 1280 px window its right column ran past the backdrop over the side panel's buttons."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.label = QLabel(self.html())
        self.label.setTextFormat(Qt.RichText)
        self._font_px = 0
        self._set_font_px(FONT_PX[0])
        self.label.setWordWrap(True)
        self.label.setAlignment(Qt.AlignLeft | Qt.AlignTop)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(16, 12, 16, 12)
        lay.addWidget(self.label)
        self.setFocusPolicy(Qt.StrongFocus)
        self.hide()

    @staticmethod
    def html() -> str:
        """The shortcut table: the first half of SHORTCUTS down the left pair of columns, the rest down the right."""
        half = (len(SHORTCUTS) + 1) // 2
        left, right = SHORTCUTS[:half], SHORTCUTS[half:]

        def cells(pair) -> str:
            if pair is None:
                return "<td></td><td></td>"
            keys, action = pair
            return (f"<td width='17%' style='padding:2px 10px 2px 0'><b>{keys}</b></td>"
                    f"<td width='33%' style='padding:2px 22px 2px 0'>{action}</td>")

        rows = "".join(f"<tr>{cells(left[i])}{cells(right[i] if i < len(right) else None)}</tr>"
                       for i in range(half))
        return (f"<h3>Keyboard shortcuts</h3><table width='100%'>{rows}</table>"
                "<p><i>Press any key to close.</i></p>")

    def _set_font_px(self, px: int) -> None:
        if px != self._font_px:
            self._font_px = px
            self.label.setStyleSheet(f"color: white; font-size: {px}px;")

    def fit(self) -> None:
        """Cover the window, in the largest of FONT_PX at which the whole list fits (a small window gets a
        smaller font rather than a list cut off at the bottom). The window calls it when it is resized."""
        self.setGeometry(self.parentWidget().rect())
        margins = self.layout().contentsMargins()
        width = max(1, self.width() - margins.left() - margins.right())
        height = self.height() - margins.top() - margins.bottom()
        for px in FONT_PX:
            self._set_font_px(px)
            if self.label.heightForWidth(width) <= height:
                break

    def paintEvent(self, ev) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(0, 0, 0, 200))

    def toggle(self) -> None:
        if self.isVisible():
            self.hide()
        else:
            self.fit()
            self.raise_()
            self.show()
            self.setFocus()

    def keyPressEvent(self, ev) -> None:  # noqa: N802
        self.hide()
        self.parentWidget().setFocus()

    def mousePressEvent(self, ev) -> None:  # noqa: N802
        self.hide()
