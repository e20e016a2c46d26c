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


class ShortcutsOverlay(QWidget):
    """Semi-transparent panel over the main window listing every shortcut; any key or click hides it."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        rows = "".join(
            f"<tr><td style='padding:2px 14px 2px 0'><b>{k}</b></td><td>{v}</td></tr>" for k, v in SHORTCUTS
        )
        label = QLabel(f"<h3>Keyboard shortcuts</h3><table>{rows}</table><p><i>Press any key to close.</i></p>")
        label.setStyleSheet("color: white; font-size: 13px;")
        label.setTextFormat(Qt.RichText)
        lay = QVBoxLayout(self)
        lay.addWidget(label, alignment=Qt.AlignCenter)
        self.setFocusPolicy(Qt.StrongFocus)
        self.hide()

    def paintEvent(self, ev) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(0, 0, 0, 200))

    def toggle(self) -> None:
        if self.isVisible():
            self.hide()
        else:
            self.setGeometry(self.parentWidget().rect())
            self.raise_()
            self.show()
            self.setFocus()

    def keyPressEvent(self, ev) -> None:  # noqa: N802
        self.hide()
        self.parentWidget().setFocus()

    def mousePressEvent(self, ev) -> None:  # noqa: N802
        self.hide()
