"""One writer per project folder: an exclusive OS lock (``filelock``) plus a record saying who holds it. No Qt.

``project.lock`` is locked with ``filelock.FileLock`` (``flock`` on POSIX): the kernel drops the lock when the
holding process dies, even on SIGKILL, so a lock left by a crash is simply taken over by the next opener; the
file itself stays (filelock never deletes it: unlinking a locked file would let two holders exist).
``project.lock.json`` beside it names the holder (host, PID, user, program, since) so that a second opener can
say who has the project open; each new holder rewrites it, and a clean release removes it.

Within one process the lock is shared: a second ``acquire`` of the same folder adds a reference instead of
blocking on the process's own lock. That alone does not keep two writers of one process apart: annotator.document
refuses a second writable Project of a folder while the first is open. Held locks are known by the lock file's
inode, not its path, so a project folder moved while open is still recognised as ours.
"""
from __future__ import annotations

import atexit
import getpass
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Optional, Union

from filelock import FileLock, Timeout

from annotator.atomic_files import atomic_write_bytes

LOCK_FILE = "project.lock"
HOLDER_FILE = "project.lock.json"

PathLike = Union[str, os.PathLike]


class LockHeldError(RuntimeError):
    """Another process holds the lock of ``folder``; ``holder`` is its record (may be empty if unreadable)."""

    def __init__(self, folder: Path, holder: dict):
        self.folder = folder
        self.holder = holder
        super().__init__(f"{folder}: the project is open for editing by another process ({describe_holder(holder)})")


def describe_holder(holder: dict) -> str:
    """'host H, PID P, user U, since T (program)' from a holder record; says so when the record is missing."""
    if not holder:
        return "holder unknown: no readable lock record"
    parts = [f"host {holder.get('host', '?')}", f"PID {holder.get('pid', '?')}", f"user {holder.get('user', '?')}"]
    if holder.get("since"):
        parts.append(f"since {holder['since']}")
    text = ", ".join(parts)
    if holder.get("program"):
        text += f" ({holder['program']})"
    return text


def read_holder(folder: PathLike) -> dict:
    """The holder record of ``folder`` ({} if there is none or it is unreadable)."""
    try:
        data = json.loads((Path(folder) / HOLDER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return str(os.getuid()) if hasattr(os, "getuid") else "?"


def _own_record() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "user": _user(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "program": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:2]) if sys.argv and sys.argv[0] else ""}


class _Held:
    """One FileLock held by this process, with its reference count."""

    def __init__(self, lock: FileLock, pid: int):
        self.lock = lock
        self.pid = pid
        self.refs = 0


_registry: dict[tuple[int, int], _Held] = {}  # (st_dev, st_ino) of the lock file -> held lock
_registry_mutex = threading.Lock()


class ProjectLock:
    """A held project lock; ``release()`` (idempotent) drops this reference, the last one unlocks the folder."""

    def __init__(self, folder: Path, key: tuple[int, int]):
        self.folder = folder
        self._key = key
        self._released = False

    @property
    def released(self) -> bool:
        return self._released

    @property
    def key(self) -> tuple[int, int]:
        """Which folder's lock this is: (st_dev, st_ino) of its lock file, the same however the folder is named."""
        return self._key

    def release(self) -> None:
        with _registry_mutex:
            if self._released:
                return
            self._released = True
            held = _registry.get(self._key)
            if held is None or held.pid != os.getpid():
                return
            held.refs -= 1
            if held.refs <= 0:
                del _registry[self._key]
                _unlock(self.folder, held)

    def __enter__(self) -> "ProjectLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def acquire(folder: PathLike) -> ProjectLock:
    """Lock ``folder`` (which must exist) for writing, without waiting.

    Raises LockHeldError naming the holder if another process has it; OSError if the lock file cannot be made
    (e.g. a read-only folder).
    """
    folder = Path(folder).resolve()
    lock_path = folder / LOCK_FILE
    with _registry_mutex:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)  # (filelock would create it too; we need its inode)
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)  # a close drops no flock: those belong to filelock's own descriptor
        key = (st.st_dev, st.st_ino)
        held = _registry.get(key)
        if held is None or held.pid != os.getpid():  # a registry inherited through fork() holds nothing here
            # thread_local=False: the GUI may release from another thread than the one that acquired
            lock = FileLock(os.fspath(lock_path), thread_local=False)
            try:
                lock.acquire(blocking=False)
            except Timeout:
                raise LockHeldError(folder, read_holder(folder)) from None
            held = _registry[key] = _Held(lock, os.getpid())
            try:  # the previous holder may have died without removing its record: ours replaces it
                atomic_write_bytes(folder / HOLDER_FILE, json.dumps(_own_record(), indent=1).encode("utf-8"))
            except OSError:
                pass  # the lock itself holds; only the courtesy record is missing
        held.refs += 1
        return ProjectLock(folder, key)


def _unlock(folder: Path, held: _Held) -> None:
    # The record goes first, while we still hold the lock, so a new holder's record is never deleted.
    record = read_holder(folder)
    if record.get("pid") == os.getpid() and record.get("host") == socket.gethostname():
        try:
            (folder / HOLDER_FILE).unlink()
        except OSError:
            pass
    try:
        held.lock.release(force=True)
    except Exception:  # the kernel drops it at exit anyway
        pass


def is_held_here(folder: PathLike) -> bool:
    """Whether this process holds the lock of ``folder``."""
    try:
        st = os.stat(Path(folder) / LOCK_FILE)
    except OSError:
        return False
    with _registry_mutex:
        held = _registry.get((st.st_dev, st.st_ino))
        return held is not None and held.pid == os.getpid()


@atexit.register
def _release_all() -> None:
    """At a normal exit, unlock everything and remove our records (on a crash the kernel unlocks)."""
    with _registry_mutex:
        items = list(_registry.items())
        _registry.clear()
    for _, held in items:
        if held.pid == os.getpid():
            _unlock(Path(held.lock.lock_file).parent, held)
