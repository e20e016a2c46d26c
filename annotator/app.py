"""GUI entry point: ``main(argv)`` builds the QApplication and the annotator window.

``python main.py [IMAGE | FOLDER | PROJECT]``. The segmentation model is loaded lazily in the worker thread, so
a missing or broken weights file is reported in the window (manual editing keeps working) instead of crashing.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Optional, Sequence


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="annotator", description="Click-to-segment image annotator (GUI).")
    p.add_argument("path", nargs="?", help="an image, a folder of images, or a project folder / project.json")
    p.add_argument("--project-dir", help="where to create the project for an IMAGE or FOLDER "
                                         "(default: the folder itself, or <image>.annot/ beside an image)")
    p.add_argument("--screenshot", metavar="PNG", help="render the window, save it to PNG and exit")
    p.add_argument("--demo-click", metavar="X,Y", action="append", default=[],
                   help="with --screenshot: click these pixels first (repeatable; accepted except the last; "
                        "-X,Y is a negative click correcting the proposal before it)")
    p.add_argument("--demo-auto", action="store_true", help="with --screenshot: run auto-segment first")
    p.add_argument("--demo-overview", action="store_true",
                   help="with --screenshot: auto-segment and show all proposals at once (the review overview)")
    p.add_argument("--random-init", action="store_true",
                   help="use an untrained net (Segmenter.random_init) instead of the bundled weights (demos)")
    p.add_argument("--weights", metavar="SAFETENSORS",
                   help="weights file to load instead of the bundled ones (e.g. PROJECT/finetune/<run>/weights.safetensors)")
    p.add_argument("--size", default=None,
                   help="window size WxH (default 1280x800, made smaller to fit a smaller screen)")
    return p


def initial_window_size(size: Optional[str], app: Any) -> tuple[int, int]:
    """--size WxH as given; by default 1280x800, bounded by the screen's free area (less room for the title bar)
    so the whole window, status bar included, is on a 1366x768 laptop screen."""
    if size:
        try:
            w, h = (int(v) for v in size.lower().split("x"))
            return w, h
        except ValueError:
            pass
    w, h = 1280, 800
    screen = app.primaryScreen()
    if screen is not None:
        free = screen.availableGeometry()
        w, h = min(w, free.width()), min(h, free.height() - 40)
    return max(w, 640), max(h, 480)


def main(
    argv: Optional[Sequence[str]] = None,
    segmenter: Any = None,
    segmenter_factory: Optional[Callable[[], Any]] = None,
    on_ready: Optional[Callable[[Any], None]] = None,
) -> int:
    """Run the annotator GUI; returns the process exit code.

    ``segmenter``: an object with the Segmenter API (tests pass a fake); default: ``model.Segmenter
    .from_pretrained()`` loaded in the worker thread on first use. ``on_ready(window)`` is called once the
    window is shown (scripting / tests).
    """
    args = _parser().parse_args(list(argv) if argv is not None else sys.argv[1:])
    problem = missing_display()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    problem = missing_xcb_libraries()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    from PyQt5.QtCore import QTimer
    from PyQt5.QtWidgets import QApplication

    from annotator._qt.main_window import MainWindow

    if segmenter is None and segmenter_factory is None and args.random_init:
        def segmenter_factory():
            from model import Segmenter

            return Segmenter.random_init(seed=0)

    weights_path = None
    if segmenter is None and segmenter_factory is None and args.weights and not args.random_init:
        weights_path = os.path.abspath(args.weights)

        def segmenter_factory():
            from model import Segmenter

            return Segmenter.from_pretrained(weights_path)

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "annotator"])
    app.setApplicationName("Pointer annotator")
    win = MainWindow(segmenter=segmenter, segmenter_factory=segmenter_factory,
                     confirm_dialogs=not args.screenshot, weights_path=weights_path)
    win.resize(*initial_window_size(args.size, app))
    _install_excepthook(win)
    win.show()
    if args.path:
        win.open_path(args.path, args.project_dir)
    if args.screenshot:
        from annotator._qt.screenshot import ScreenshotScript

        ScreenshotScript(win, args.screenshot, args.demo_click, args.demo_auto,
                         overview=args.demo_overview).start()
    if on_ready is not None:
        QTimer.singleShot(0, lambda: on_ready(win))
    code = app.exec_()
    return int(code or getattr(win, "exit_code", 0))


def missing_display(environ: Optional[dict] = None) -> Optional[str]:
    """Why the window cannot open here, or None. Without this check Qt aborts (exit 134) with "could not load
    the Qt platform plugin xcb", which says nothing of the fix."""
    env = os.environ if environ is None else environ
    if sys.platform != "linux" or env.get("QT_QPA_PLATFORM") or env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return None
    return ("error: no display: the annotator window needs a desktop session (DISPLAY or WAYLAND_DISPLAY is not "
            "set).\n"
            "  - on a server, run it under a virtual display:  xvfb-run -a python main.py ...\n"
            "  - or use the headless commands:  python main.py segment IMAGE --out overlay.png\n"
            "                                   python main.py auto IMAGES_DIR --out OUT_DIR\n"
            "  - for a screenshot without any display: QT_QPA_PLATFORM=offscreen python main.py IMAGE "
            "--screenshot out.png")


# The X client libraries PyQt5's xcb platform plugin loads; README.md ("A fresh Debian / Ubuntu") gives the same
# line (tests/test_gui_layout.py checks that they agree).
XCB_APT_LINE = ("sudo apt-get install -y libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 "
                "libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0 libxcb-shape0 libxcb-xfixes0 libgl1 libegl1 "
                "libfontconfig1 libdbus-1-3")


def _load_library(path: str) -> None:
    """dlopen ``path`` and everything it links to; OSError names the first library that is missing."""
    import ctypes

    ctypes.CDLL(path)


def missing_xcb_libraries(environ: Optional[dict] = None) -> Optional[str]:
    """Why Qt's X11 platform plugin (xcb) cannot load here, or None. Without this check a machine lacking the X
    client libraries (a fresh Debian: libxcb-icccm4, libxcb-keysyms1, libxcb-xinerama0 missing) gets Qt's raw
    "could not load the Qt platform plugin xcb" and an abort (exit 134), which does not name the packages. The
    plugin is loaded with ctypes, as Qt would load it, before any QApplication exists."""
    env = os.environ if environ is None else environ
    if sys.platform != "linux" or env.get("QT_QPA_PLATFORM", "xcb").split(":")[0] != "xcb":
        return None
    try:
        from PyQt5.QtCore import QLibraryInfo
    except ImportError:
        return None
    plugin = os.path.join(QLibraryInfo.location(QLibraryInfo.PluginsPath), "platforms", "libqxcb.so")
    if not os.path.exists(plugin):
        return None  # another Qt layout: Qt's own message is all there is
    try:
        _load_library(plugin)
    except OSError as exc:
        return ("error: the annotator window cannot open: Qt's X11 platform plugin (xcb) needs X client libraries "
                f"that are not installed ({exc}).\n"
                "  Install them with the line from README.md (\"A fresh Debian / Ubuntu\"):\n"
                f"    {XCB_APT_LINE}\n"
                "  or, without a window, use the headless commands:  python main.py segment IMAGE --out overlay.png")
    return None


def _install_excepthook(win) -> None:
    """An unexpected error in a slot is shown (and printed), not fatal: PyQt would otherwise abort the app."""
    import traceback

    def hook(etype, value, tb):
        traceback.print_exception(etype, value, tb)
        try:
            win.notify(f"Unexpected error: {etype.__name__}: {value}", error=True)
        except Exception:
            pass

    sys.excepthook = hook


if __name__ == "__main__":
    sys.exit(main())
