"""Kill soak of the project store: real edits in a child process, SIGKILLed at random moments.

Each round forks a child that opens the project and makes random edits (accept, paint, erase, delete, merge,
category changes, crowd flags, undo, redo) as fast as it can. Every edit saves (Project autosave); around each
save the child tells the parent the digest of the in-memory state it is about to write ("SAVING") and, once
``save()`` returned, that it is on disk ("SAVED"). The child dies by SIGKILL, either

* from inside the save path: a fault point at every write (also half-way through the bytes of a file), fsync,
  rename and unlink the save makes, the n-th of which (drawn at random) kills the process there; or
* from the parent's timer, at a random moment.

The parent then reopens the project and checks that it opens, and that what is on disk is the last state the
child reported SAVED, or the newer one it was in the middle of saving (never older: an edit reported as saved is
never lost; never a mix). The next round continues from there.

    python bench/kill_soak.py --kills 1000            # prints the counts; exit 1 if anything was lost

``--unsafe-writes`` replaces the atomic write with a plain ``open(path, "wb").write``: the harness must then
find damage (its self-test).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import gc
import os
import random
import select
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from annotator import document  # noqa: E402
from annotator.document import Project, ProjectError  # noqa: E402


# ------------------------------------------------------------------------------------------------ state
def state_digest(project: Project) -> str:
    """Hash of everything a save must keep: categories, and per image its segments and label map."""
    h = hashlib.sha256()
    cats = [(c.id, c.name, list(c.color), bool(c.isthing)) for c in project.categories]
    h.update(json.dumps(cats).encode())
    for e in project.images:
        segs = sorted((int(s.id), int(s.category_id), bool(s.iscrowd)) for s in e.segments.values())
        h.update(json.dumps(segs).encode())
        h.update(np.ascontiguousarray(e.labels, np.int32).tobytes())
    return h.hexdigest()[:16]


def make_project(folder: Path, n_images: int = 3, h: int = 48, w: int = 64, seed: int = 0) -> Path:
    """A small project of random images in ``folder/project``."""
    import cv2

    rng = np.random.default_rng(seed)
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        cv2.imwrite(str(images / f"img{i}.png"), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    Project.new(images, folder / "project").close()
    return folder / "project"


# ------------------------------------------------------------------------------------------------ child
class _Fault:
    """Counts the save path's disk operations; SIGKILLs this process at operation number ``target``."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0

    def point(self) -> None:
        self.count += 1
        if self.count == self.target:
            os.kill(os.getpid(), signal.SIGKILL)


def _install_faults(fault: _Fault, unsafe_writes: bool) -> None:
    """Put fault points at every write, fsync, rename and unlink (this child only: it was forked)."""
    real_fsync, real_replace, real_unlink, real_fdopen = os.fsync, os.replace, os.unlink, os.fdopen

    class _File:
        def __init__(self, f):
            self._f = f

        def write(self, data) -> int:
            fault.point()
            half = len(data) // 2
            self._f.write(data[:half])
            self._f.flush()  # the first half reaches the file: a kill here leaves it half written
            fault.point()
            return half + self._f.write(data[half:])

        def __getattr__(self, name):
            return getattr(self._f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self._f.__exit__(*exc)

    def fsync(fd):
        fault.point()
        return real_fsync(fd)

    def replace(a, b, **kw):
        fault.point()
        return real_replace(a, b, **kw)

    def unlink(p, **kw):
        fault.point()
        return real_unlink(p, **kw)

    def fdopen(fd, *a, **kw):
        return _File(real_fdopen(fd, *a, **kw))

    os.fsync, os.replace, os.unlink, os.fdopen = fsync, replace, unlink, fdopen
    if unsafe_writes:
        def plain_write(path, data):  # what the harness must catch: no temp file, no rename
            with open(path, "wb") as f:
                _File(f).write(data)

        document.atomic_write_bytes = plain_write


def _random_mask(rng: random.Random, h: int, w: int) -> np.ndarray:
    import cv2

    m = np.zeros((h, w), np.uint8)
    if rng.random() < 0.5:
        x0, y0 = rng.randrange(w), rng.randrange(h)
        cv2.rectangle(m, (x0, y0), (min(w - 1, x0 + rng.randrange(3, w)), min(h - 1, y0 + rng.randrange(3, h))),
                      1, -1)
    else:
        cv2.circle(m, (rng.randrange(w), rng.randrange(h)), rng.randrange(2, max(3, h // 2)), 1, -1)
    return m.astype(bool)


def _one_edit(project: Project, rng: random.Random) -> None:
    """One random edit; edits that do not apply (e.g. nothing to merge) raise ValueError/ProjectError."""
    i = rng.randrange(len(project.images))
    e = project.images[i]
    sids = list(e.segments)
    cids = [c.id for c in project.categories]
    kind = rng.choices(["accept", "paint", "erase", "delete", "merge", "category", "crowd", "add_category",
                        "rename", "recolor", "delete_category", "undo", "redo"],
                       [6, 3, 2, 2, 1, 2, 1, 1, 1, 1, 1, 3, 2])[0]
    if kind == "accept" or not sids and kind in ("paint", "erase", "delete", "merge", "category", "crowd"):
        project.add_segment(i, _random_mask(rng, e.height, e.width), rng.choice(cids),
                            overwrite=rng.random() < 0.3)
    elif kind in ("paint", "erase"):
        project.paint(i, rng.choice(sids), _random_mask(rng, e.height, e.width), erase=kind == "erase",
                      overwrite=rng.random() < 0.5)
    elif kind == "delete":
        project.delete_segment(i, rng.choice(sids))
    elif kind == "merge":
        if len(sids) < 2:
            raise ValueError("nothing to merge")
        a, b = rng.sample(sids, 2)
        project.merge_segments(i, a, b)
    elif kind == "category":
        project.set_segment_category(i, rng.choice(sids), rng.choice(cids))
    elif kind == "crowd":
        project.set_segment_crowd(i, rng.choice(sids), rng.random() < 0.5)
    elif kind == "add_category":
        if len(cids) >= 6:
            raise ValueError("enough categories")
        project.add_category(f"cat{rng.randrange(1000)}", isthing=rng.random() < 0.7)
    elif kind == "rename":
        project.rename_category(rng.choice(cids), f"name{rng.randrange(1000)}")
    elif kind == "recolor":
        project.recolor_category(rng.choice(cids), [rng.randrange(256) for _ in range(3)])
    elif kind == "delete_category":
        if len(cids) < 2:
            raise ValueError("the last category stays")
        gone = rng.choice(cids)
        project.delete_category(gone, move_to=rng.choice([c for c in cids if c != gone]))
    elif kind == "undo":
        project.undo()
    else:
        project.redo()


def _child(project_dir: Path, seed: int, fault_target: int, unsafe_writes: bool, write_fd: int,
           max_edits: int) -> None:
    """Runs in the forked child; never returns (os._exit)."""
    try:
        rng = random.Random(seed)
        project = Project.open(project_dir)

        def say(text: str) -> None:
            os.write(write_fd, (text + "\n").encode())

        real_save = project.save

        def save() -> None:
            say(f"SAVING {state_digest(project)}")
            real_save()
            say(f"SAVED {state_digest(project)}")

        project.save = save
        _install_faults(_Fault(fault_target), unsafe_writes)
        say("READY")
        for _ in range(max_edits):
            try:
                _one_edit(project, rng)
            except (ValueError, KeyError, ProjectError):
                pass
        say("DONE")
        os._exit(0)
    except BaseException as exc:  # reported, so a broken harness is not mistaken for a pass
        try:
            os.write(write_fd, f"ERROR {type(exc).__name__}: {exc}\n".encode())
        finally:
            os._exit(3)


# ------------------------------------------------------------------------------------------------ parent
def _wait_or_kill(pid: int, deadline: float) -> tuple[int, bool]:
    """(the child's wait status, whether it was still running at the deadline and had to be killed)."""
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status, False
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            return os.waitpid(pid, 0)[1], True
        time.sleep(0.01)


def _read_all(fd: int, deadline: float) -> str:
    chunks = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        data = os.read(fd, 65536)
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks).decode()


def run_soak(project_dir: Path, kills: int, seed: int = 0, fault_fraction: float = 0.5,
             max_timer_s: float = 0.4, unsafe_writes: bool = False, max_edits: int = 100_000,
             log: Optional[callable] = None, child_timeout_s: float = 120.0) -> dict:
    """Run ``kills`` rounds (see module doc); returns the counts. A child that neither finishes nor dies
    within ``child_timeout_s`` is killed and reported as a failure, never waited for forever."""
    rng = random.Random(seed)
    counts = dict(kills=0, fault_kills=0, timer_kills=0, finished_unkilled=0, saves_acknowledged=0,
                  reopen_failures=0, edits_lost=0, mixed_states=0, child_errors=0, in_flight_saves_found=0)
    failures: list[str] = []
    with_lock = Project.open(project_dir)
    try:
        on_disk = state_digest(with_lock)  # what the next child starts from
    finally:
        with_lock.close()
    for round_ in range(kills):
        by_fault = rng.random() < fault_fraction
        fault_target = rng.randrange(1, 120) if by_fault else -1
        read_fd, write_fd = os.pipe()
        # The child must not finalise the parent's garbage: a native object's destructor (an OpenVINO compiled
        # model left by an earlier test, say) can wait forever on threads that do not exist after fork. Frozen
        # objects are never collected, and the child collects nothing at all.
        gc.freeze()
        pid = os.fork()
        if pid == 0:  # child
            gc.disable()
            os.close(read_fd)
            _child(project_dir, rng.randrange(1 << 30) + round_, fault_target, unsafe_writes, write_fd, max_edits)
        gc.unfreeze()
        os.close(write_fd)
        if not by_fault:
            # wait for READY (the child opened the project), then kill it at a random moment of its edits
            first = b""
            while not first.endswith(b"\n"):
                b = os.read(read_fd, 1)
                if not b:
                    break
                first += b
            time.sleep(rng.uniform(0.0, max_timer_s))
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + child_timeout_s
        text = _read_all(read_fd, deadline)
        os.close(read_fd)
        status, hung = _wait_or_kill(pid, deadline)
        if hung:  # a broken harness, not a pass; the disk is still checked below, as after any kill
            counts["child_errors"] += 1
            failures.append(f"round {round_}: the child hung for {child_timeout_s:g} s and was killed")
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        lines = text.splitlines()
        if any(line.startswith("ERROR") for line in lines):
            counts["child_errors"] += 1
            failures.append(f"round {round_}: {[line for line in lines if line.startswith('ERROR')][0]}")
        if killed:
            counts["kills"] += 1
            counts["fault_kills" if by_fault else "timer_kills"] += 1
        else:
            counts["finished_unkilled"] += 1
        saved = [line.split()[1] for line in lines if line.startswith("SAVED ")]
        saving = [line.split()[1] for line in lines if line.startswith("SAVING ")]
        counts["saves_acknowledged"] += len(saved)
        # what must be on disk: the last acknowledged state, or the one whose save was cut short
        acceptable = set(saved[-1:]) or {on_disk}  # no save acknowledged: what was there before the round
        in_flight = saving[-1] if len(saving) > len(saved) else None
        if in_flight:
            acceptable.add(in_flight)
        try:
            reopened = Project.open(project_dir)
        except ProjectError as exc:
            counts["reopen_failures"] += 1
            failures.append(f"round {round_}: reopen failed: {exc}")
            break  # nothing to go on from
        try:
            digest = state_digest(reopened)
        finally:
            reopened.close()
        if digest not in acceptable:
            older = set(saved[:-1]) | set(saving[:-1]) | {on_disk}
            counts["edits_lost" if digest in older else "mixed_states"] += 1
            how = f"fault point {fault_target}" if by_fault else "timer"
            older_pos = [i for i, d in enumerate(saved) if d == digest]
            failures.append(f"round {round_} ({how}, {len(saved)} saves acknowledged, {len(saving)} begun): on "
                            f"disk {digest} (acknowledged save #{older_pos}), expected one of {sorted(acceptable)}")
        elif in_flight and digest == in_flight:
            counts["in_flight_saves_found"] += 1
        on_disk = digest
        if log:
            log(round_, counts)
    counts["failures"] = failures[:20]
    return counts


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fault-fraction", type=float, default=0.5,
                    help="share of rounds killed from inside the save path (the rest by a timer)")
    ap.add_argument("--project", help="project folder to soak (default: a fresh temporary one)")
    ap.add_argument("--unsafe-writes", action="store_true", help="self-test: plain writes, damage expected")
    ap.add_argument("--json", help="write the counts here too")
    a = ap.parse_args(argv)
    from tqdm import tqdm

    with tempfile.TemporaryDirectory() as tmp:
        project_dir = Path(a.project) if a.project else make_project(Path(tmp))
        bar = tqdm(total=a.kills, desc="kill soak", unit="round")
        t0 = time.monotonic()
        counts = run_soak(project_dir, a.kills, a.seed, a.fault_fraction, unsafe_writes=a.unsafe_writes,
                          log=lambda r, c: (bar.update(1), bar.set_postfix(lost=c["edits_lost"],
                                                                           reopen_fail=c["reopen_failures"])))
        bar.close()
        counts["seconds"] = round(time.monotonic() - t0, 1)
    for k, v in counts.items():
        if k != "failures":
            print(f"{k:24s} {v}")
    for f in counts["failures"]:
        print("  ", f)
    if a.json:
        Path(a.json).write_text(json.dumps(counts, indent=1))
    bad = counts["reopen_failures"] + counts["edits_lost"] + counts["mixed_states"] + counts["child_errors"]
    return 0 if a.unsafe_writes or bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
