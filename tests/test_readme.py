"""The README as a newcomer reads it: short, every `python` command in it parses as written, and no text file in
the repository speaks of how the work was organised."""
from __future__ import annotations

import argparse
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


class _Parsed(Exception):
    """Raised instead of running a command once its arguments have parsed."""


def readme_python_commands(text: str) -> list[str]:
    """Every `python ...` command in the README's code blocks and inline code, `&&` chains split, comments cut.
    Lines with an ellipsis are shorthand, not commands."""
    commands: list[str] = []
    in_block = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_block = not in_block
            continue
        pieces = [line] if in_block else re.findall(r"`([^`]+)`", line)
        for piece in pieces:
            piece = piece.split(" # ")[0].strip()
            for part in piece.split("&&"):
                part = part.strip()
                if part.startswith("python ") and "..." not in part:
                    commands.append(part)
    return commands


def _dry_run(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the command's entry point in this process up to its first argument parsing, no further."""
    argv = shlex.split(command)[1:]
    parse_args, parse_known_args = argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args
    inside_parse_args = [0]  # parse_args calls parse_known_args (and so do sub-command parsers): let those through

    def parse_args_then_stop(self, args=None, namespace=None):
        inside_parse_args[0] += 1
        try:
            parse_args(self, args, namespace)  # argparse errors exit 2 here, as on the command line
        finally:
            inside_parse_args[0] -= 1
        raise _Parsed

    def parse_known_args_then_stop(self, args=None, namespace=None):
        result = parse_known_args(self, args, namespace)
        if not inside_parse_args[0]:
            raise _Parsed
        return result

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_args_then_stop)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", parse_known_args_then_stop)
    monkeypatch.chdir(ROOT)
    if argv[0] == "-m":
        module, args = argv[1], argv[2:]
        monkeypatch.setattr(sys, "argv", [module, *args])
        run = lambda: runpy.run_module(module, run_name="__main__", alter_sys=True)  # noqa: E731
    else:
        script, args = argv[0], argv[1:]
        monkeypatch.setattr(sys, "argv", [script, *args])
        run = lambda: runpy.run_path(str(ROOT / script), run_name="__main__")  # noqa: E731
    try:
        run()
    except _Parsed:
        return
    except SystemExit as exc:
        pytest.fail(f"{command!r} exited {exc.code} while parsing its arguments")
    pytest.fail(f"{command!r} ran to its end without parsing any arguments")


def test_the_readme_is_short_and_the_model_card_too() -> None:
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 250
    assert len((ROOT / "resources" / "MODEL_CARD.md").read_text(encoding="utf-8").splitlines()) <= 200


def test_the_readme_names_its_python_commands() -> None:
    commands = readme_python_commands(README.read_text(encoding="utf-8"))
    assert any(c.startswith("python main.py segment") for c in commands)
    assert any(c.startswith("python -m train.evaluate") for c in commands)
    assert any(c.startswith("python bench/") for c in commands)


@pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")  # runpy, a module of a loaded package
@pytest.mark.parametrize("command", readme_python_commands(README.read_text(encoding="utf-8")))
def test_every_readme_command_parses_as_written(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if command.startswith("python -m pytest"):
        return  # the test suite itself
    _dry_run(command, monkeypatch)


def test_the_dry_run_catches_a_wrong_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(pytest.fail.Exception, match="exited 2"):
        _dry_run("python main.py auto IMAGES --out OUT --no-such-flag", monkeypatch)


# The word for a round of work followed by its number, or an issue number: history belongs in git.
WORK_HISTORY = re.compile(r"\bsessions?[ -]\d+|\bissues? #?\d+|\bsession-\d+", re.IGNORECASE)


def test_no_tracked_text_file_names_rounds_of_work_or_issue_numbers() -> None:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    offenders = []
    for name in files:
        path = ROOT / name
        if not path.is_file() or path.suffix in (".png", ".jpg", ".safetensors"):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if name == "tests/test_readme.py":
            text = text.replace(WORK_HISTORY.pattern, "")
        for k, line in enumerate(text.splitlines(), 1):
            if WORK_HISTORY.search(line):
                offenders.append(f"{name}:{k}: {line.strip()[:100]}")
    assert not offenders, "\n".join(offenders)
