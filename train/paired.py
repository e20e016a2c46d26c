"""Paired comparison of two `python -m train.evaluate clicks` runs on the same objects.

    python -m train.paired BEFORE.json AFTER.json [--method net] [--only PREFIX ...]

For NoC@85, NoC@90, IoU@1 and the mean IoU over clicks 1-10, the mean of (after - before) over the objects both
runs measured, its standard error, and how many objects got better and worse. `--only coco_mval_train/` keeps
the objects whose image name starts with that prefix (one source of `train continue --measure --json`); given
several times, each prefix is compared on its own after the whole. With about 40 held-out photo
objects a difference of a few tenths of a click is inside the noise; the standard error says how far.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

METRICS = ("noc85", "noc90", "iou1", "miou10")
LOWER_IS_BETTER = {"noc85": True, "noc90": True, "iou1": False, "miou10": False}


def _object_metrics(rec: dict, max_clicks: int) -> dict[str, float]:
    ious = list(rec["ious"])
    # A chain that reached the target early stops; it keeps its last IoU for the later clicks.
    padded = (ious + [ious[-1]] * max_clicks)[:10]
    return {"noc85": float(rec["noc85"]), "noc90": float(rec["noc90"]), "iou1": float(ious[0]),
            "miou10": sum(padded) / len(padded)}


def per_object(result: dict, method: str = "net") -> dict[tuple[str, int], dict[str, float]]:
    """{(image name, segment index): metrics} of one evaluation's JSON."""
    max_clicks = int(result.get("settings", {}).get("max_clicks", 20))
    out = {}
    for im in result["per_image"]:
        for obj in im.get("objects", []):
            if method in obj:
                out[(im["name"], int(obj.get("segment", 0)))] = _object_metrics(obj[method], max_clicks)
    return out


def compare(before: dict, after: dict, method: str = "net", prefix: str = "") -> dict[str, dict]:
    """{metric: {mean_before, mean_after, diff, se, better, worse, n}} over the objects both runs have (whose
    image name starts with `prefix`)."""
    a, b = per_object(before, method), per_object(after, method)
    keys = sorted(k for k in set(a) & set(b) if k[0].startswith(prefix))
    if not keys:
        what = f" whose name starts with {prefix!r}" if prefix else ""
        raise ValueError(f"the two runs share no objects{what} (different data, or not clicks mode?)")
    out = {}
    for m in METRICS:
        d = [b[k][m] - a[k][m] for k in keys]
        n = len(d)
        mean = sum(d) / n
        se = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1) / n) if n > 1 else float("nan")
        sign = -1 if LOWER_IS_BETTER[m] else 1
        out[m] = {"mean_before": sum(a[k][m] for k in keys) / n, "mean_after": sum(b[k][m] for k in keys) / n,
                  "diff": mean, "se": se, "better": sum(1 for x in d if sign * x > 1e-12),
                  "worse": sum(1 for x in d if sign * x < -1e-12), "n": n}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.paired", description=__doc__.split("\n")[0])
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("--method", default="net")
    p.add_argument("--only", action="append", default=[], metavar="PREFIX",
                   help="also compare only the objects whose image name starts with PREFIX (repeatable)")
    args = p.parse_args(argv)
    try:
        runs = [json.loads(Path(f).read_text()) for f in (args.before, args.after)]
        tables = [("", compare(runs[0], runs[1], args.method))]
        tables += [(prefix, compare(runs[0], runs[1], args.method, prefix)) for prefix in args.only]
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for prefix, table in tables:
        n = next(iter(table.values()))["n"]
        which = f" named {prefix}*" if prefix else ""
        print(f"{n} objects{which} in both runs; after - before (standard error), objects better / worse")
        for m, r in table.items():
            print(f"{m:8s} {r['mean_before']:7.3f} -> {r['mean_after']:7.3f}   {r['diff']:+.3f} ({r['se']:.3f})   "
                  f"{r['better']} / {r['worse']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
