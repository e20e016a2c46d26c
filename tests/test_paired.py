"""python -m train.paired: the paired difference of two click evaluations over the objects both measured."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from train.paired import compare, main


def _run(objects: dict[str, tuple[int, int, list[float]]]) -> dict:
    per_image = [{"name": name, "objects": [{"segment": 0, "net": {"noc85": n85, "noc90": n90, "ious": ious}}]}
                 for name, (n85, n90, ious) in objects.items()]
    return {"settings": {"max_clicks": 20}, "per_image": per_image}


def test_paired_difference_standard_error_and_counts(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    before = _run({"a": (3, 5, [0.5, 0.9]), "b": (2, 4, [0.6, 0.95]), "c": (1, 1, [0.95]),
                   "only_before": (20, 20, [0.1])})
    after = _run({"a": (2, 3, [0.7, 0.95]), "b": (2, 5, [0.6, 0.92]), "c": (1, 1, [0.95])})
    t = compare(before, after)
    assert t["noc90"]["n"] == 3  # "only_before" is not paired
    assert t["noc90"]["diff"] == pytest.approx((-2 + 1 + 0) / 3)
    assert (t["noc90"]["better"], t["noc90"]["worse"]) == (1, 1)
    assert t["noc90"]["se"] == pytest.approx(((((-2 + 1 / 3) ** 2 + (1 + 1 / 3) ** 2 + (1 / 3) ** 2) / 2) / 3) ** 0.5)
    assert t["iou1"]["diff"] == pytest.approx(0.2 / 3) and t["iou1"]["better"] == 1
    # A chain that stopped keeps its last IoU for the later clicks of the mean over clicks 1-10.
    assert t["miou10"]["mean_before"] == pytest.approx((0.5 + 9 * 0.9 + 0.6 + 9 * 0.95 + 10 * 0.95) / 30)
    (tmp_path / "b.json").write_text(json.dumps(before))
    (tmp_path / "a.json").write_text(json.dumps(after))
    assert main([str(tmp_path / "b.json"), str(tmp_path / "a.json")]) == 0
    assert "3 objects in both runs" in capsys.readouterr().out


def test_runs_without_shared_objects_or_a_missing_file_give_a_clear_error(tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "x.json").write_text(json.dumps(_run({"a": (1, 1, [0.95])})))
    (tmp_path / "y.json").write_text(json.dumps(_run({"b": (1, 1, [0.95])})))
    assert main([str(tmp_path / "x.json"), str(tmp_path / "y.json")]) == 2
    assert "share no objects" in capsys.readouterr().err
    assert main([str(tmp_path / "x.json"), str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err


def test_only_compares_each_source_apart(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    before = _run({"coco/a": (3, 5, [0.5]), "coco/b": (3, 5, [0.5]), "salient/c": (2, 4, [0.6])})
    after = _run({"coco/a": (2, 3, [0.7]), "coco/b": (2, 4, [0.6]), "salient/c": (2, 6, [0.6])})
    assert compare(before, after, prefix="coco/")["noc90"]["diff"] == pytest.approx(-1.5)
    assert compare(before, after, prefix="salient/")["noc90"]["diff"] == pytest.approx(2.0)
    (tmp_path / "b.json").write_text(json.dumps(before))
    (tmp_path / "a.json").write_text(json.dumps(after))
    assert main([str(tmp_path / "b.json"), str(tmp_path / "a.json"), "--only", "coco/", "--only", "salient/"]) == 0
    out = capsys.readouterr().out
    assert "3 objects in both runs" in out and "2 objects named coco/* in both runs" in out
    assert "1 objects named salient/* in both runs" in out
    assert main([str(tmp_path / "b.json"), str(tmp_path / "a.json"), "--only", "bsds/"]) == 2
    assert "starts with 'bsds/'" in capsys.readouterr().err
