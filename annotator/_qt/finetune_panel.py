"""Fine-tuning from the annotator: the options dialog, the training process and the live training panel.

Training runs as a separate process (``python -m train finetune``, argv from ``train.finetune.build_command``)
started with QProcess, never in the GUI process: the window stays responsive, and a crash of training cannot
take the annotations with it (they are autosaved; the process reads its own export of the project). The
process appends JSON lines to OUT/progress.jsonl, which :class:`FinetuneProcess` tails with a QTimer (reading
only the new bytes); creating OUT/STOP asks it to stop cleanly (it keeps the weights reached so far).
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import pyqtgraph as pg
from PyQt5.QtCore import QObject, QProcess, QProcessEnvironment, Qt, QTimer, pyqtSignal
from PyQt5.QtGui import QColor, QFont
from PyQt5.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

_TQDM = re.compile(r"^\s*[\w ]*:\s*\d+%\|")  # a tqdm progress-bar line ("train:  40%|####  | ...")
REPO_ROOT = Path(__file__).resolve().parents[2]  # where `python -m train` is importable
PROGRESS_NAME = "progress.jsonl"  # train.finetune.PROGRESS_NAME (not imported here: keep GUI start light)
TAIL_CHARS = 20000  # how much of the process output is kept for error reports
CHILD_NICE = 10  # training yields the CPU to the GUI (Linux per-thread nice, inherited by its threads)

# Rows and columns of the before/after table: (report key, label), (metric key, header, digits).
TABLE_ROWS = (("before", "current weights"), ("after", "fine-tuned"))
TABLE_COLS = (("noc90", "NoC@90", 2), ("noc85", "NoC@85", 2), ("iou_at_1", "IoU@1", 3), ("fails_at_90", "fails@90", 0))
LOWER_IS_BETTER = {"noc90", "noc85", "fails_at_90"}


def default_threads() -> int:
    """Torch threads for the training process: all cores but one, which stays free for the GUI."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


def format_seconds(s: Optional[float]) -> str:
    if s is None:
        return "–"
    s = max(0, int(round(s)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


# ============================================================================================ options dialog
class FinetuneOptionsDialog(QDialog):
    """Steps, base weights (default: the ones loaded now) and the training crop / batch size."""

    def __init__(self, options: Dict[str, Any], parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Fine-tune on this project")
        self._extra = {k: v for k, v in options.items()
                       if k not in ("base", "steps", "crop", "batch_size", "replay", "train_bn")}
        self.steps = QSpinBox()
        self.steps.setRange(1, 1_000_000)
        self.steps.setValue(int(options.get("steps", 300)))
        self.crop = QSpinBox()
        self.crop.setRange(32, 2048)
        self.crop.setSingleStep(32)  # the net needs multiples of 32
        self.crop.setValue(int(options.get("crop", 256)))
        self.batch_size = QSpinBox()
        self.batch_size.setRange(1, 256)
        self.batch_size.setValue(int(options.get("batch_size", 4)))
        self.base = QLineEdit(str(options.get("base") or ""))
        self.base.setMinimumWidth(360)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        base_row = QHBoxLayout()
        base_row.addWidget(self.base, 1)
        base_row.addWidget(browse)
        self.replay = QLineEdit(str((options.get("replay") or [""])[0]))
        self.replay.setPlaceholderText("optional: images/ + masks/ folder or COCO panoptic JSON")
        self.replay.setToolTip("Data the weights were trained on (e.g. photos). Mixed into training so the net "
                               "keeps what it knew while it learns this project.")
        browse_replay = QPushButton("Browse…")
        browse_replay.clicked.connect(self._browse_replay)
        replay_row = QHBoxLayout()
        replay_row.addWidget(self.replay, 1)
        replay_row.addWidget(browse_replay)
        form = QFormLayout()
        form.addRow("Training steps:", self.steps)
        form.addRow("Start from weights:", base_row)
        form.addRow("Also replay (keeps old skills):", replay_row)
        self.train_bn = QCheckBox("Let BatchNorm statistics adapt (more gain on a very different domain, "
                                  "forgets more)")
        self.train_bn.setChecked(bool(options.get("train_bn", False)))
        form.addRow("", self.train_bn)
        form.addRow("Crop size (px):", self.crop)
        form.addRow("Batch size:", self.batch_size)
        note = QLabel("Training runs in a separate process; you can keep annotating. About 20% of the labelled "
                      "images are held out to measure the old and the new weights. The new weights are saved in "
                      "the project's finetune/ folder; the bundled weights are never changed.")
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.button(QDialogButtonBox.Ok).setText("Start")
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        self.buttons = buttons
        self.error = QLabel()
        self.error.setStyleSheet("color:#c03030;")
        self.error.hide()
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(note)
        lay.addWidget(self.error)
        lay.addWidget(buttons)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Base weights", self.base.text(), "Weights (*.safetensors);;All files (*)")
        if path:
            self.base.setText(path)

    def _browse_replay(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Replay data folder (images/ + masks/ or labels/)",
                                                self.replay.text())
        if path:
            self.replay.setText(path)

    def _accept(self) -> None:
        from train.finetune import FinetuneError, replay_spec

        replay = self.replay.text().strip()
        if replay:
            try:
                replay_spec(replay)
            except FinetuneError as e:
                self.error.setText(str(e).replace("--replay ", "Replay data "))
                self.error.show()
                return
        base = self.base.text().strip()
        if not base or not Path(base).is_file():
            self.error.setText(f"Base weights file not found: {base or '(none)'}. Load weights first "
                               "(Model ▸ Load weights…) or browse to a .safetensors file.")
            self.error.show()
            return
        if self.crop.value() % 32:
            self.error.setText("The crop size must be a multiple of 32.")
            self.error.show()
            return
        self.accept()

    def options(self) -> Dict[str, Any]:
        replay = self.replay.text().strip()
        return dict(self._extra, base=self.base.text().strip(), steps=self.steps.value(), crop=self.crop.value(),
                    batch_size=self.batch_size.value(), replay=[replay] if replay else [],
                    train_bn=self.train_bn.isChecked())


# ============================================================================================ the process
class FinetuneProcess(QObject):
    """One fine-tuning run as a child process; emits the new progress records of each poll and, once, the outcome.

    ``finished(status, report, message)``: status is "done", "cancelled" or "failed"; report is the run's
    report.json (dict) or None; message explains a failure (the run's own error, else the output tail).
    """

    polled = pyqtSignal(list)  # the progress records read by one poll (one panel update per poll)
    finished = pyqtSignal(str, object, str)

    def __init__(self, project_dir: os.PathLike, out_dir: os.PathLike, options: Dict[str, Any],
                 poll_ms: int = 500, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        from annotator.finetune_job import build_command  # exports the project, then train.finetune on that

        self.project_dir = Path(project_dir)
        self.out_dir = Path(out_dir)
        self.options = dict(options)
        self.command: List[str] = build_command(self.project_dir, self.out_dir, **self.options)
        self.records: List[dict] = []
        self.output = ""  # tail of stdout + stderr
        self.status = "idle"  # idle, running, done, cancelled, failed
        self.cancel_requested = False
        self.started_at: Optional[float] = None
        self._pos = 0
        self._partial = b""
        self._reported = False
        self.proc = QProcess(self)
        self.proc.setProcessChannelMode(QProcess.MergedChannels)
        self.proc.setWorkingDirectory(str(REPO_ROOT))
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONPATH", os.pathsep.join(p for p in (str(REPO_ROOT), env.value("PYTHONPATH", "")) if p))
        env.insert("PYTHONUNBUFFERED", "1")
        self.proc.setProcessEnvironment(env)
        self.proc.readyReadStandardOutput.connect(self._read_output)
        self.proc.started.connect(self._lower_priority)
        self.proc.finished.connect(self._on_finished)
        self.proc.errorOccurred.connect(self._on_error)
        self.timer = QTimer(self)
        self.timer.setInterval(poll_ms)
        self.timer.timeout.connect(self.poll)

    @property
    def running(self) -> bool:
        return self.proc.state() != QProcess.NotRunning

    @property
    def stop_file(self) -> Path:
        from train.finetune import STOP_NAME

        return self.out_dir / STOP_NAME

    def start(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.status = "running"
        self.started_at = time.monotonic()
        self.proc.start(self.command[0], self.command[1:])
        self.timer.start()

    def _lower_priority(self) -> None:
        # Right after exec the child is one thread; the threads torch starts later inherit the nice value.
        try:
            os.setpriority(os.PRIO_PROCESS, int(self.proc.processId()), CHILD_NICE)
        except (AttributeError, OSError, PermissionError):
            pass

    def cancel(self) -> None:
        """Ask the run to stop cleanly after its current step (it keeps the weights reached so far)."""
        if not self.running or self.cancel_requested:
            return
        self.cancel_requested = True
        try:
            self.stop_file.touch()
        except OSError:
            self.proc.terminate()

    def kill(self) -> None:
        if self.running:
            self.cancel_requested = True
            self.proc.kill()

    def wait(self, msecs: int) -> bool:
        return self.proc.waitForFinished(msecs) if self.running else True

    # ---- reading what the process writes
    def poll(self) -> List[dict]:
        """Parse the lines appended to progress.jsonl since the last poll (a half-written line waits)."""
        path = self.out_dir / PROGRESS_NAME
        try:
            with open(path, "rb") as f:
                if os.fstat(f.fileno()).st_size < self._pos:  # the writer started the file afresh
                    self._pos, self._partial = 0, b""
                f.seek(self._pos)
                chunk = f.read()
        except OSError:
            return []
        self._pos += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        new = []
        for line in lines:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(rec, dict):
                new.append(rec)
        if new:
            self.records.extend(new)
            self.polled.emit(new)
        return new

    def _read_output(self) -> None:
        text = bytes(self.proc.readAllStandardOutput()).decode("utf-8", "replace")
        self.output = (self.output + text)[-TAIL_CHARS:]

    def output_tail(self, lines: int = 15) -> str:
        """The last lines of the process output (tqdm's carriage-return updates collapsed)."""
        rows: List[str] = []
        for r in self.output.replace("\r", "\n").splitlines():
            if not r.strip():
                continue
            if rows and _TQDM.match(r) and _TQDM.match(rows[-1]):
                rows[-1] = r.rstrip()  # one line per progress bar, not one per update
            else:
                rows.append(r.rstrip())
        return "\n".join(rows[-lines:])

    def _on_error(self, error) -> None:
        if error == QProcess.FailedToStart:
            self._finish("failed", None, f"could not start {' '.join(self.command[:4])}: {self.proc.errorString()}")

    def _on_finished(self, exit_code: int, exit_status) -> None:
        self._read_output()
        self.poll()
        if self._partial.strip():  # the last line had no newline yet
            self._partial += b"\n"
            self.poll()
        done = next((r for r in reversed(self.records) if r.get("done")), None)
        report = done.get("report") if done else None
        if report is None:
            try:
                report = json.loads((self.out_dir / "report.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                report = None
        crashed = exit_status != QProcess.NormalExit
        if done is not None and done.get("error"):
            self._finish("failed", None, str(done["error"]))
        elif crashed or exit_code != 0 or report is None:
            if crashed and self.cancel_requested:
                self._finish("cancelled", report, "killed")
                return
            why = "crashed" if crashed else f"exited with code {exit_code}"
            tail = self.output_tail()
            self._finish("failed", None, f"The fine-tuning process {why}." + (f"\n{tail}" if tail else ""))
        elif report.get("stopped"):
            self._finish("cancelled", report, "")
        else:
            self._finish("done", report, "")

    def _finish(self, status: str, report: Optional[dict], message: str) -> None:
        self.timer.stop()
        if self._reported:
            return
        self._reported = True
        self.status = status
        self.finished.emit(status, report, message)


# ============================================================================================ the panel
class FinetunePanel(QWidget):
    """Live view of a run: loss / validation IoU plots, step, ETA, progress bar, Cancel; at the end the
    before/after table on the held-out images and the choice between the new and the current weights."""

    use_requested = pyqtSignal(str)  # weights path
    keep_requested = pyqtSignal()
    cancel_requested = pyqtSignal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.run: Optional[FinetuneProcess] = None
        self.state = "idle"  # idle, running, cancelling, done, cancelled, failed
        self.report: Optional[dict] = None
        self.new_weights: Optional[str] = None
        self.steps_x: List[float] = []
        self.loss_y: List[float] = []
        self.val_x: List[float] = []
        self.val_y: List[float] = []

        self.title = QLabel("No fine-tuning run yet.")
        self.title.setWordWrap(True)
        f = self.title.font()
        f.setBold(True)
        self.title.setFont(f)
        self.detail = QLabel("")
        self.detail.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(self._on_cancel)
        top = QHBoxLayout()
        top.addWidget(self.progress, 1)
        top.addWidget(self.cancel_btn)

        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setMinimumHeight(220)
        self.loss_plot = self.plots.addPlot(row=0, col=0, title="training loss")
        self.loss_curve = self.loss_plot.plot([], [], pen=pg.mkPen((255, 160, 40), width=2))
        self.iou_plot = self.plots.addPlot(row=1, col=0, title="validation IoU (held-out images)")
        self.iou_plot.setLabel("bottom", "step")
        self.iou_curve = self.iou_plot.plot([], [], pen=pg.mkPen((60, 200, 255), width=2), symbol="o", symbolSize=5,
                                            symbolBrush=(60, 200, 255))
        # Redrawing a plot costs several ms of GUI-thread time (axes, ticks): at most one redraw per interval.
        self.plot_interval_ms = 1000
        self._plot_timer = QTimer(self)
        self._plot_timer.setSingleShot(True)
        self._plot_timer.timeout.connect(self._redraw_curves)
        self._plotted_at = -1e9
        self._plotted = (0, 0)

        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        # One row per metric, one column per weights: two columns fit a narrow dock (four metric columns beside
        # long row labels were cut off).
        self.table = QTableWidget(len(TABLE_COLS), len(TABLE_ROWS))
        self.table.setHorizontalHeaderLabels([r[1] for r in TABLE_ROWS])
        self.table.setVerticalHeaderLabels([c[1] for c in TABLE_COLS])
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setFocusPolicy(Qt.NoFocus)
        self.table.setMaximumHeight(160)
        # Every column visible: the table is as wide as its contents, the last column takes any slack.
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setSizeAdjustPolicy(QTableWidget.AdjustToContents)
        self.table.hide()
        self.hint = QLabel("NoC@90: clicks needed to reach 90% IoU (lower is better). IoU@1: overlap after one click "
                           "(higher is better).")
        self.hint.setWordWrap(True)
        self.hint.hide()
        self.use_btn = QPushButton("Use new weights now")
        self.keep_btn = QPushButton("Keep current weights")
        self.use_btn.clicked.connect(self._on_use)
        self.keep_btn.clicked.connect(self._on_keep)
        choice = QHBoxLayout()
        choice.addWidget(self.use_btn)
        choice.addWidget(self.keep_btn)
        self.choice = QWidget()
        self.choice.setLayout(choice)
        self.choice.hide()
        self.decision = QLabel("")
        self.decision.setWordWrap(True)
        self.error = QPlainTextEdit()
        self.error.setReadOnly(True)
        self.error.setFont(QFont("monospace", 8))
        self.error.setStyleSheet("color:#ffb0b0; background:#3a1a1a;")
        self.error.setMaximumHeight(160)
        self.error.hide()

        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(self.title)
        lay.addLayout(top)
        lay.addWidget(self.detail)
        lay.addWidget(self.plots, 1)
        lay.addWidget(self.error)
        lay.addWidget(self.summary)
        lay.addWidget(self.table)
        lay.addWidget(self.hint)
        lay.addWidget(self.choice)
        lay.addWidget(self.decision)

    # ---- a run
    def attach(self, run: FinetuneProcess) -> None:
        """Show `run` (resets the panel); call before run.start()."""
        self.run = run
        self.state = "running"
        self.report = None
        self.new_weights = None
        self.steps_x, self.loss_y, self.val_x, self.val_y = [], [], [], []
        self._plot_timer.stop()
        self._plotted = (0, 0)
        self.loss_curve.setData([], [])
        self.iou_curve.setData([], [])
        # A new run's curves get fresh axes (the last run's zoom would hide or squash them).
        for plot in (self.loss_plot, self.iou_plot):
            plot.enableAutoRange()
        self.choice.setEnabled(True)  # "Keep" / "Use" of the last run disabled them
        self.use_btn.setText("Use new weights now")
        self.progress.setValue(0)
        self.title.setText(f"Fine-tuning ({run.options.get('steps')} steps) → {run.out_dir}")
        self.detail.setText("Starting the training process…")
        self.cancel_btn.setText("Cancel")
        self.cancel_btn.setEnabled(True)
        for w in (self.table, self.hint, self.choice, self.error):
            w.hide()
        self.summary.setText("")
        self.decision.setText("")
        run.polled.connect(self.on_records)
        run.finished.connect(self.on_finished)

    def on_records(self, records: List[dict]) -> None:
        """Show the records of one poll: labels and progress at once, the curves at most once per interval."""
        for rec in records:
            self._take(rec)
        if (len(self.loss_y), len(self.val_y)) != self._plotted and not self._plot_timer.isActive():
            wait = self._plotted_at + self.plot_interval_ms / 1000 - time.monotonic()
            self._plot_timer.start(max(0, int(wait * 1000)))

    def _redraw_curves(self) -> None:
        n = (len(self.loss_y), len(self.val_y))
        if n[0] != self._plotted[0]:
            self.loss_curve.setData(self.steps_x, self.loss_y)
        if n[1] != self._plotted[1]:
            self.iou_curve.setData(self.val_x, self.val_y)
        self._plotted = n
        self._plotted_at = time.monotonic()

    def _take(self, rec: dict) -> None:
        phase = rec.get("phase")
        if phase == "data":
            if "train_images" in rec:
                self.detail.setText(f"Data: {rec['train_images']} training images, {rec['val_images']} held out.")
            else:
                self.detail.setText("Exporting the project's annotations…")
        elif phase == "train":
            step, steps = int(rec.get("step", 0)), max(1, int(rec.get("steps", 1)))
            self.progress.setValue(int(900 * step / steps))
            if rec.get("loss") is not None:
                self.steps_x.append(step)
                self.loss_y.append(float(rec["loss"]))
            if rec.get("val_iou") is not None and (not self.val_y or self.val_y[-1] != rec["val_iou"]):
                # log.csv repeats the last validation IoU on every row: plot only where it was measured anew
                self.val_x.append(step)
                self.val_y.append(float(rec["val_iou"]))
            loss = f" · loss {rec['loss']:.3f}" if rec.get("loss") is not None else ""
            val = f" · val IoU {rec['val_iou']:.3f}" if rec.get("val_iou") is not None else ""
            self.detail.setText(f"Training: step {step}/{steps}{loss}{val} · ETA {format_seconds(rec.get('eta_s'))}"
                                + (" · stopping…" if self.state == "cancelling" else ""))
        elif phase == "evaluate":
            frac = float(rec.get("done_fraction") or 0.0)
            self.progress.setValue(900 + int(100 * frac))
            self.detail.setText(f"Measuring the current and the new weights on the held-out images… {frac:.0%}")

    def _on_cancel(self) -> None:
        if self.run is None:
            return
        if self.state == "cancelling":  # a second press: the run did not stop, end it now
            self.run.kill()
            return
        self.state = "cancelling"
        self.cancel_btn.setText("Kill")
        self.detail.setText(self.detail.text() + " · stopping after the current step…")
        self.cancel_requested.emit()
        self.run.cancel()

    def on_finished(self, status: str, report: Optional[dict], message: str) -> None:
        self.state = status
        self._plot_timer.stop()
        self._redraw_curves()
        self.report = report
        self.cancel_btn.setEnabled(False)
        elapsed = time.monotonic() - self.run.started_at if self.run and self.run.started_at else None
        if status == "failed":
            self.title.setText("Fine-tuning failed — your annotations are unchanged.")
            self.detail.setText(f"After {format_seconds(elapsed)}. Output folder: {self.run.out_dir if self.run else ''}")
            self.error.setPlainText(message)
            self.error.show()
            return
        weights = (report or {}).get("weights")
        self.new_weights = weights if weights and Path(weights).is_file() else None
        if status == "cancelled":
            self.progress.setValue(self.progress.value())
            done = (report or {}).get("steps_done")
            self.title.setText("Fine-tuning cancelled.")
            kept = f" The weights after {done} steps can still be used." if self.new_weights and done else ""
            self.detail.setText(f"Stopped after {format_seconds(elapsed)}; no before/after measurement.{kept}")
            if self.new_weights and done:
                self.use_btn.setText("Use these (unmeasured) weights")
                self.choice.show()
            return
        self.progress.setValue(1000)
        self.title.setText("Fine-tuning finished.")
        self.detail.setText(f"{report.get('steps_done')} steps in {format_seconds(report.get('train_s'))} "
                            f"(total {format_seconds(report.get('wall_s'))}). New weights: {weights}")
        self.show_table(report)
        self.use_btn.setText("Use new weights now")
        self.choice.setVisible(self.new_weights is not None)

    def show_table(self, report: dict) -> None:
        """Fill the before/after table from a report.json dict. With too few held-out objects to tell the weights
        apart (train.finetune.too_few_objects) the table says so and colours no change as better or worse: one
        held-out image had shown a green "IoU@1 0.959 -> 1.000" that meant nothing."""
        from train.finetune import too_few_objects, too_few_objects_text

        inconclusive = too_few_objects(report)
        self.summary.setText(f"On {len(report.get('val_images') or [])} held-out image(s), "
                             f"{report.get('eval_objects', 0)} objects (trained on "
                             f"{len(report.get('train_images') or [])} image(s)):"
                             + (f"\n{too_few_objects_text(report)}" if inconclusive else ""))
        self.summary.setStyleSheet("color:#d08000;" if inconclusive else "")
        before = report.get("before") or {}
        for r, (key, _) in enumerate(TABLE_ROWS):
            m = report.get(key) or {}
            for c, (mk, _, digits) in enumerate(TABLE_COLS):
                v = m.get(mk)
                item = QTableWidgetItem("–" if v is None else f"{v:.{digits}f}")
                item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                b = before.get(mk)
                if key == "after" and v is not None and b is not None and v != b and not inconclusive:
                    better = v < b if mk in LOWER_IS_BETTER else v > b
                    item.setForeground(QColor(40, 170, 60) if better else QColor(210, 60, 60))
                self.table.setItem(c, r, item)
        self.table.resizeColumnsToContents()
        self.table.show()
        self.hint.show()

    def cell(self, row_key: str, metric: str) -> str:
        """Text shown for one cell of the table (tests, scripting)."""
        r = [k for k, _ in TABLE_ROWS].index(row_key)
        c = [k for k, _, _ in TABLE_COLS].index(metric)
        item = self.table.item(c, r)
        return item.text() if item is not None else ""

    def _on_use(self) -> None:
        if self.new_weights:
            self.choice.setEnabled(False)
            self.decision.setText(f"Loading {self.new_weights}…")
            self.use_requested.emit(self.new_weights)

    def _on_keep(self) -> None:
        self.choice.setEnabled(False)
        self.decision.setText("Kept the current weights.")
        self.keep_requested.emit()

    def weights_result(self, ok: bool, text: str) -> None:
        """The window reports whether loading the new weights worked."""
        self.decision.setText(text)
        if not ok:
            self.choice.setEnabled(True)
