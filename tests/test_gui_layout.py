"""The window as a person sees it: start-up on a machine without the X client libraries."""
from __future__ import annotations

import re
from pathlib import Path

from annotator import app

ROOT = Path(__file__).resolve().parent.parent


def _readme_apt_line() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"sudo apt-get install -y libxcb(?:[^\n\\]|\\\n)*", text)
    assert m, "README.md lost its apt-get line for the X client libraries"
    return " ".join(m.group(0).replace("\\\n", " ").split())


def test_missing_x_client_libraries_exit_1_naming_the_readme_apt_line(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.setenv("DISPLAY", ":99")

    def missing(path):
        raise OSError("libxcb-icccm.so.4: cannot open shared object file: No such file or directory")

    monkeypatch.setattr(app, "_load_library", missing)
    code = app.main([str(tmp_path / "x.png")])  # returns before any QApplication exists
    err = capsys.readouterr().err
    assert code == 1
    assert "libxcb-icccm.so.4" in err
    assert _readme_apt_line() in " ".join(err.split())
    # another platform (offscreen, wayland) is not probed
    assert app.missing_xcb_libraries({"QT_QPA_PLATFORM": "offscreen"}) is None
