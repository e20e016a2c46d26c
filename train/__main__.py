"""`python -m train [--config FILE] [flags]`: train the net (see train.trainer.TrainConfig for every option).

`python -m train finetune ...` is the fine-tuning command (train.finetune); `python -m train average ...` averages
snapshots of a run into one weights file (train.average); `python -m train pack ...` copies training folders
shrunk for a lent accelerator (train.pack); `python -m train continue` is the training run that resumes itself
(train.continuous); `python -m train grow ...` deepens trained weights to a larger encoder (train.grow)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import fields

from .trainer import TrainConfig, train


def parse_args(argv: list[str]) -> TrainConfig:
    p = argparse.ArgumentParser(prog="python -m train", description=__doc__)
    p.add_argument("--config", help="JSON file with TrainConfig fields; flags override it")
    for f in fields(TrainConfig):
        name = "--" + f.name.replace("_", "-")
        if f.name == "sources":
            p.add_argument(name, nargs="+", help="kind:path[:weight]; kinds: masks, semantic, coco, synthetic, copypaste (copypaste:SRC+SRC[:weight[:n]])")
        elif f.name == "replay":
            p.add_argument(name, nargs="+", help="sources trained on but never validated on (fine-tuning)")
        elif f.type in ("bool", bool):
            p.add_argument(name, action="store_true", default=None)
        else:
            typ = {"int": int, "float": float}.get(str(f.type), str)
            p.add_argument(name, type=typ)
    a = p.parse_args(argv)
    values = json.load(open(a.config)) if a.config else {}
    for f in fields(TrainConfig):
        v = getattr(a, f.name)
        if v is not None:
            values[f.name] = v
    cfg = TrainConfig(**values)
    if not cfg.sources:
        p.error("no data: give --sources or a --config with sources")
    return cfg


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "finetune":
        from .finetune import main as finetune_main
        return finetune_main(argv[1:])
    if argv and argv[0] == "average":
        from .average import main as average_main
        return average_main(argv[1:])
    if argv and argv[0] == "continue":
        from .continuous import main as continue_main
        return continue_main(argv[1:])
    if argv and argv[0] == "grow":
        from .grow import main as grow_main
        return grow_main(argv[1:])
    if argv and argv[0] == "pack":
        from .pack import main as pack_main
        return pack_main(argv[1:])
    cfg = parse_args(argv)
    # `touch OUT/STOP` ends a long run cleanly: checkpoint and weights.safetensors are written first.
    summary = train(cfg, stop_file=os.path.join(cfg.out, "STOP"))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
