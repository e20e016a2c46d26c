"""The trainer: mixed data sources, AdamW, checkpoints with resume, CSV log, validation IoU, AMP on CUDA and
multi-GPU through torchrun (DistributedDataParallel)."""
from __future__ import annotations

import csv
import json
import math
import os
import time
import signal
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.distributed as dist
from torch.nn import functional as F
from torch.utils.data import DataLoader, IterableDataset

from model.encoding import CLICK_RADIUS
from model.net import DEFAULT_BACKBONE, PointerSegNet
from model.weights import WeightsError, backbone_of, backbone_of_state, load_into, save_weights

from .sampling import SamplingConfig, make_example, next_click
from .splits import held_out_names, in_hash_split


@dataclass
class TrainConfig:
    sources: list[str] = field(default_factory=list)  # "kind:path[:weight]", see open_source()
    out: str = "runs/default"
    steps: int = 2000
    batch_size: int = 8
    crop: int = 448                  # side of the square training crops, the net's click resolution: 384 beat 256
                                     # and 448 beat 384 at equal wall-clock (docs/training.md)
    lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup: int = 100
    val_every: int = 200
    val_examples: int = 64
    ckpt_every: int = 100
    # Every this many steps a weights-only snapshot snapshots/step_NNNNNN.safetensors is kept (0 = none), so
    # checkpoints of a long run can be compared on held-out data after it ends (the resume checkpoint is overwritten).
    keep_every: int = 0
    log_every: int = 10
    workers: int = 1
    seed: int = 0
    init_weights: str | None = None  # start from these net weights (fine-tuning) instead of ImageNet
    # The EfficientNet-Lite encoder (model.net.BACKBONES: lite0, lite1, lite2). None: init_weights' own, else lite0.
    backbone: str | None = None
    resume: bool = False
    threads: int = 0                 # torch CPU threads, 0 = torch default
    val_fraction: float = 0.1        # held out of each source (by file-name hash) for validation IoU
    # Fine-tuning without forgetting: `replay` sources (same syntax as `sources`) are trained on, never validated
    # on (old data mixed into new; the files the default split holds out stay out); `freeze_bn` keeps BatchNorm statistics as they were (a small batch of an
    # odd domain would otherwise re-centre every feature the old data relied on); `anchor` pulls each weight
    # back towards its initial value by lr * anchor * (w - w0) per step (decoupled L2-SP).
    replay: list[str] = field(default_factory=list)
    freeze_bn: bool = False
    anchor: float = 0.0
    # Correction training on the net's own mistakes (RITM-style): in this share of batches the net first runs
    # 1..iterative_rounds times without gradients; each round adds the protocol's next click on its error and
    # makes its prediction the previous-mask channel, so corrections are learnt from the errors the net makes.
    iterative: float = 0.0
    iterative_rounds: int = 3
    # Share of those simulated rounds that add no click: the prediction only goes back as the previous mask with
    # the same clicks, as the Segmenter's first click refines its own mask (large_object_refine_sides,
    # small_object_refine), so the net also learns to tighten a mask it made itself.
    self_refine: float = 0.0
    # Pixel loss beside soft Dice: "bce", or "nfl", RITM's normalised focal loss (Sofiiuk et al. 2021), which
    # down-weights pixels already right and renormalises so the hard ones (borders, thin parts) carry the gradient.
    loss: str = "bce"
    # Extra weight on the pixel loss within `boundary_band` px of the target's outline (0 = off): NoC@90 is decided
    # at the outline, where the net's masks are blobby, while most pixels are easy interior ones.
    boundary_weight: float = 0.0
    boundary_band: int = 3
    # Share of examples from fully labelled sources posed as segment_image poses them (sampling.p_sweep).
    sweep: float = 0.0
    # Zoom of the training crops relative to "the whole image fits the crop" (sampling.scale_range), drawn
    # log-uniformly between the two; a click runs the whole image at 1.0.
    scale_min: float = 0.9
    scale_max: float = 2.2
    # Stronger augmentation (sampling.rotate_deg, p_grey, p_blur): off by default.
    rotate_deg: float = 0.0
    p_grey: float = 0.0
    p_blur: float = 0.0
    # A wall-clock budget in minutes (0 = none), for a lent accelerator whose time is fixed and whose speed is not
    # known in advance: the cosine decay then runs on the share of the budget used instead of the share of `steps`,
    # and training ends when the budget is spent (or at `steps`, whichever comes first), annealed either way.
    max_minutes: float = 0.0
    # "cosine" decays to 0 over `steps` (or `max_minutes`); "constant" keeps `lr` after the warm-up, for a run
    # that keeps going across many legs (train.continuous) and is judged by its validation curve.
    schedule: str = "cosine"
    # Hold out the fixed validation split (train/val_split.json, train.splits) instead of the hash split: no name
    # in it is trained on, and the in-run validation IoU is measured on it.
    exclude_val: bool = False
    # A checkpoint every this many minutes of training as well as every `ckpt_every` steps (0 = steps only).
    ckpt_minutes: float = 0.0
    # End this call after this many minutes (0 = no limit) with a checkpoint, leaving the schedule as it is: one
    # leg of a longer run that the next call resumes.
    leg_minutes: float = 0.0
    # An exponential moving average of the weights, updated after every step with this decay (0 = none) and
    # written beside the final weights as ema.safetensors: at a constant learning rate it averages out the
    # last ~1/(1-ema) steps' noise, as a cool-down does, without leaving the run.
    ema: float = 0.0


_is_val = in_hash_split  # the name other modules import


def _split_key(reader, i: int, names: list[str]) -> str:
    """The name a split decides on: the image for readers with several items per image (BSDS's people)."""
    key = getattr(reader, "split_key", None)
    return key(i) if key is not None else names[i]


def _held_out(reader, exclude: set[str] | None, fraction: float) -> list[bool]:
    """Per item of `reader`: held out for validation (in `exclude`, the fixed split, when given; else by hash)."""
    names = getattr(reader, "names", None) or [str(i) for i in range(len(reader))]
    keys = [_split_key(reader, i, names) for i in range(len(names))]
    if exclude is not None:
        return [k in exclude or n in exclude for k, n in zip(keys, names)]
    return [_is_val(k, fraction) for k in keys]


class _Subset:
    def __init__(self, reader, indices: list[int]):
        self.reader, self.indices = reader, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return self.reader[self.indices[i]]


def open_source(spec: str):
    """`kind:path[:weight]` -> (reader, weight, fully_labelled). kinds: masks (images/ + masks/ folder),
    semantic (images/ + labels/ class maps), coco (COCO panoptic JSON), bsds (images/ + segs/<id>_<k>.png, one
    item per person's segmentation), synthetic (path = number of scenes)."""
    parts = spec.split(":")
    kind, path = parts[0], parts[1] if len(parts) > 1 else ""
    weight = float(parts[2]) if len(parts) > 2 else 1.0
    if kind == "masks":
        from .readers import FolderMaskReader
        return FolderMaskReader(path), weight, False
    if kind == "semantic":
        from .readers import SemanticLabelReader
        return SemanticLabelReader(path), weight, True
    if kind == "coco":
        from .coco_panoptic import CocoPanopticReader
        return CocoPanopticReader(path), weight, True
    if kind == "bsds":
        from .readers import BsdsReader
        return BsdsReader(path), weight, True
    if kind == "synthetic":
        from .synthetic import SyntheticScenes
        return SyntheticScenes(int(path or 2000), seed=12345), weight, True
    raise ValueError(f"unknown data source kind {kind!r} in {spec!r} (masks, semantic, coco, bsds, synthetic)")


def _open_copy_paste(spec: str, val_fraction: float, exclude: set[str] | None = None):
    """`copypaste:SRC+SRC...[:weight[:n]][:crowd=P]`, each SRC a `masks` folder (or `semantic=PATH`): objects cut
    from the training split of the `masks` sources (one whole object per photo), pasted onto training-split photos
    of all of them (a semantic source's regions are stuff and fragments: backgrounds only); `crowd=P`: each pasted
    object is a row of alike copies with probability P (train.copy_paste)."""
    from .copy_paste import CopyPasteScenes
    parts = spec.split(":")
    crowd = 0.0
    if len(parts) > 2 and parts[-1].startswith("crowd="):
        try:
            crowd = float(parts.pop()[len("crowd="):])
        except ValueError:
            raise ValueError(f"{spec}: crowd= takes a probability, e.g. crowd=0.3") from None
        if not 0 <= crowd <= 1:
            raise ValueError(f"{spec}: crowd= takes a probability in [0, 1], got {crowd:g}")
    weight = float(parts[2]) if len(parts) > 2 else 1.0
    n = int(parts[3]) if len(parts) > 3 else 20000
    objects, backgrounds = [], []
    for src in parts[1].split("+"):
        kind, _, path = src.rpartition("=")
        reader, _, _ = open_source(f"{kind or 'masks'}:{path}")
        subset = _Subset(reader, [i for i, v in enumerate(_held_out(reader, exclude, val_fraction)) if not v])
        backgrounds.append(subset)
        if kind in ("", "masks"):  # one whole object per photo
            objects.append(subset)
    return CopyPasteScenes(objects, backgrounds, n=n, seed=4321, crowd_probability=crowd), weight, False


def split_sources(specs: list[str], val_fraction: float, exclude: set[str] | None = None):
    """[(train_subset, weight, fully_labelled)], [(val_subset, fully_labelled)]. `exclude`: the names held out
    (the fixed validation split) instead of the hash split by `val_fraction`."""
    train, val = [], []
    for spec in specs:
        if spec.startswith("copypaste:"):
            # Built from the training split of its sources only; validated on through those sources.
            reader, weight, full = _open_copy_paste(spec, val_fraction, exclude)
            train.append((reader, weight, full))
            continue
        reader, weight, full = open_source(spec)
        if spec.startswith("synthetic:"):  # generated scenes: nothing to hold out by name
            held = [exclude is None and _is_val(str(i), val_fraction) for i in range(len(reader))]
        else:
            held = _held_out(reader, exclude, val_fraction)
        tr = [i for i, v in enumerate(held) if not v]
        va = [i for i, v in enumerate(held) if v]
        train.append((_Subset(reader, tr), weight, full))
        if va:
            val.append((_Subset(reader, va), full))
    return train, val


def set_train_mode(net: torch.nn.Module, freeze_bn: bool = False) -> None:
    """net.train(), with BatchNorm layers left in eval mode (fixed statistics) when `freeze_bn`."""
    net.train()
    if freeze_bn:
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()


class MixedExamples(IterableDataset):
    """Endless training examples drawn from the sources in proportion to their weights."""

    def __init__(self, sources, cfg: SamplingConfig, seed: int, start_step: int = 0):
        # The stream is fixed by (seed, rank, worker, start step): a run resumed at step N draws the same examples
        # whenever it is resumed there, and a new leg never repeats an earlier leg's stream.
        self.sources, self.cfg, self.seed, self.start_step = sources, cfg, seed, start_step

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        worker = info.id if info else 0
        rng = np.random.default_rng([self.seed, rank, worker, self.start_step])
        weights = np.array([w for _, w, _ in self.sources], float)
        weights /= weights.sum()
        while True:
            reader, _, full = self.sources[rng.choice(len(self.sources), p=weights)]
            if len(reader) == 0:
                continue
            ex = make_example(reader[int(rng.integers(len(reader)))], rng, self.cfg, full)
            if ex is not None:
                yield ex


def _loader_worker_init(_: int) -> None:
    # Each loader worker is one process on one core. OpenCV's thread count is set to 1 in the parent before the
    # workers fork (see train()): calling cv2.setNumThreads in a forked child whose parent had started OpenCV's
    # thread pool waits forever on the pool's lock (the trainer hung before its first step).
    torch.set_num_threads(1)
    # Stop signals are the main process's to handle (finish the step, checkpoint, end the workers): Ctrl+C reaches
    # the whole process group, and `pkill -f` matches the workers' command line too; a worker that died of either
    # crashed the run without its last checkpoint.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def fixed_examples(sources, cfg: SamplingConfig, n: int, seed: int = 1234) -> list[dict]:
    """The same validation examples every time (fixed seed), so validation IoU is comparable across steps."""
    rng = np.random.default_rng(seed)
    out = []
    tries = 0
    while len(out) < n and sources and tries < n * 10:
        tries += 1
        reader, full = sources[tries % len(sources)]
        if len(reader) == 0:
            continue
        ex = make_example(reader[int(rng.integers(len(reader)))], rng, cfg, full)
        if ex is not None:
            out.append(ex)
    return out


def normalized_focal_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
                          gamma: float = 2.0, alpha: float = 0.5) -> torch.Tensor:
    """RITM's normalised focal loss: focal weights (1 - p_t)^gamma rescaled per image to sum to the number of
    valid pixels (the rescale factor carries no gradient), so easy pixels fade without shrinking the loss."""
    prob = torch.sigmoid(logits)
    pos = target > 0.5
    pt = torch.where(pos, prob, 1 - prob)
    pt = torch.where(valid > 0.5, pt, torch.ones_like(pt))
    beta = (1 - pt) ** gamma
    n_valid = valid.sum((1, 2, 3), keepdim=True)
    mult = (n_valid / (beta.sum((1, 2, 3), keepdim=True) + 1e-8)).detach()
    log_pt = torch.where(pos, F.logsigmoid(logits), F.logsigmoid(-logits))
    loss = -alpha * beta * mult * log_pt * valid
    return (loss.sum((1, 2, 3)) / n_valid.view(-1).clamp_min(1.0)).mean()


def boundary_band(target: torch.Tensor, band: int) -> torch.Tensor:
    """1 on pixels within `band` px (Chebyshev) of the outline of a (N, 1, H, W) binary target, else 0."""
    k = 2 * band + 1
    dilated = F.max_pool2d(target, k, stride=1, padding=band)
    eroded = -F.max_pool2d(-target, k, stride=1, padding=band)
    return (dilated - eroded).clamp(0, 1)


def segmentation_loss(logits, score_logit, target, valid, pixel_loss: str = "bce",
                      boundary_weight: float = 0.0, band: int = 3):
    """BCE (or the normalised focal loss) + soft Dice over valid pixels, plus BCE of the score against the
    mask's real IoU. With `boundary_weight`, BCE pixels near the target's outline count 1 + boundary_weight
    times (the mean stays over valid pixels, so the outline adds to the loss rather than diluting the rest)."""
    if pixel_loss == "nfl":
        bce = normalized_focal_loss(logits, target, valid)
    elif pixel_loss == "bce":
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        if boundary_weight > 0:
            bce = bce * (1 + boundary_weight * boundary_band((target > 0.5).float(), band))
        bce = (bce * valid).sum() / valid.sum().clamp_min(1.0)
    else:
        raise ValueError(f"unknown pixel loss {pixel_loss!r}: use 'bce' or 'nfl'")
    prob = torch.sigmoid(logits) * valid
    inter = (prob * target).sum((1, 2, 3))
    dice = 1 - (2 * inter + 1) / (prob.sum((1, 2, 3)) + (target * valid).sum((1, 2, 3)) + 1)
    with torch.no_grad():
        iou = batch_iou(logits > 0, target > 0.5, valid > 0.5)
    score = F.binary_cross_entropy_with_logits(score_logit.float(), iou)
    return bce + dice.mean() + 0.1 * score, iou


def batch_iou(pred, target, valid):
    inter = (pred & target & valid).sum((1, 2, 3)).float()
    union = ((pred | target) & valid).sum((1, 2, 3)).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def _batch_to(batch: dict, device) -> dict:
    batch = {k: torch.as_tensor(v).to(device, non_blocking=True) for k, v in batch.items()}
    # The encoder's depthwise convolutions train about twice as fast on CPU in channels-last layout (a step of
    # batch 8 at 448 px on 2 threads: 4.8 s NCHW, 2.5 s channels-last). Stacking the HWC->CHW transposed images
    # already gives that layout; this keeps it should the images ever arrive NCHW-contiguous.
    batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
    return batch


def _collate(examples: list[dict]) -> dict:
    return {k: torch.from_numpy(np.stack([e[k] for e in examples])) for k in examples[0]}


@torch.no_grad()
def validate(net, examples: list[dict], device, batch_size: int = 8, freeze_bn: bool = False) -> float:
    net.eval()
    ious = []
    for i in range(0, len(examples), batch_size):
        b = _batch_to(_collate(examples[i:i + batch_size]), device)
        logits, _ = net(b["image"], b["pointer"], b["roi"])
        ious.append(batch_iou(logits > 0, b["target"] > 0.5, b["valid"] > 0.5).cpu())
    set_train_mode(net, freeze_bn)
    return float(torch.cat(ious).mean()) if ious else float("nan")


@torch.no_grad()
def simulate_corrections(net, batch: dict, rounds: int, freeze_bn: bool = False, use_amp: bool = False,
                         add_clicks: Sequence[bool] | None = None) -> dict:
    """The interactive loop on a training batch: `rounds` times, predict, place the protocol's next click on the
    larger error (inside ROI and valid pixels), and feed the prediction back as the previous mask, as the
    Segmenter does at a correction. `add_clicks[r]` False makes round r a pure refinement: the prediction goes
    back as the previous mask with no new click. Returns the batch with its pointer channels updated; the target
    stays."""
    add_clicks = [True] * rounds if add_clicks is None else list(add_clicks)
    if len(add_clicks) != rounds:
        raise ValueError(f"add_clicks needs one entry per round ({rounds}), got {len(add_clicks)}")
    net.eval()
    device = batch["pointer"].device
    target = batch["target"][:, 0].cpu().numpy() > 0.5
    allowed = ((batch["valid"] * batch["roi"])[:, 0] > 0.5).cpu().numpy()
    roi = batch["roi"] > 0.5
    pointer = batch["pointer"].cpu().numpy().copy()
    for add_click in add_clicks:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits, _ = net(batch["image"], torch.from_numpy(pointer).to(device), batch["roi"])
        pred = ((logits > 0) & roi)[:, 0].cpu().numpy()
        for i in range(len(pred)):
            if not add_click:
                pointer[i, 2] = pred[i]
                continue
            click = next_click(pred[i], target[i], allowed[i])
            if click is None:
                continue
            x, y, positive = click
            cv2.circle(pointer[i, 0 if positive else 1], (x, y), CLICK_RADIUS, 1.0, -1)
            pointer[i, 2] = pred[i]
    set_train_mode(net, freeze_bn)
    return {**batch, "pointer": torch.from_numpy(pointer).to(device)}


class TrainingClock:
    """Seconds of training rather than of the wall. A gap between two steps far longer than the steps before it (a
    laptop suspended, a run stopped with SIGSTOP while a benchmark had the CPU) counts as one typical step, so a
    pause neither ends a timed leg nor skips part of a learning-rate schedule that runs on time: a 45-minute pause
    once ended a 60-minute leg after 200 steps instead of about 1000. Slow steps under load still count in full."""

    GAP_MIN_S = 60.0  # never a pause below this (validation and checkpoints take seconds)
    GAP_FACTOR = 20.0  # a pause: over 20 times the median of the recent steps

    def __init__(self, before_s: float = 0.0, now=None) -> None:
        self._now = now or (lambda: time.time())
        self.counted = before_s
        self.paused = 0.0  # seconds left uncounted
        self._last = self._now()
        self._recent: list[float] = []

    def _pending(self, t: float) -> tuple[float, float]:
        dt = t - self._last
        if len(self._recent) >= 3:
            typical = float(np.median(self._recent))
            if dt > max(self.GAP_MIN_S, self.GAP_FACTOR * typical):
                return typical, dt - typical
        return dt, 0.0

    def read(self) -> float:
        """Training seconds so far, the step under way included."""
        return self.counted + self._pending(self._now())[0]

    def tick(self) -> float:
        """Close the current step (or pause) and return the training seconds so far."""
        t = self._now()
        dt, skipped = self._pending(t)
        self._last = t
        self.counted += dt
        self.paused += skipped
        self._recent = (self._recent + [dt])[-50:]
        return self.counted


def _lr_at(step: int, cfg: TrainConfig, elapsed_s: float = 0.0) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.schedule == "constant":
        return cfg.lr
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    if cfg.max_minutes > 0:
        t = max(t, elapsed_s / (60.0 * cfg.max_minutes))
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def ema_net(net: torch.nn.Module, ema: list[torch.Tensor]) -> torch.nn.Module:
    """A copy of `net` holding the averaged parameters `ema` (in net.parameters() order); buffers as in `net`
    (frozen BatchNorm statistics do not move)."""
    import copy

    averaged = copy.deepcopy(net)
    with torch.no_grad():
        for p, e in zip(averaged.parameters(), ema):
            p.copy_(e)
    return averaged


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(cfg: TrainConfig, stop_file: str | None = None) -> dict:
    """Run (or resume) training; returns a summary dict. Writes under cfg.out: checkpoint.pt, log.csv,
    weights.safetensors (final net), config.json. A file named `stop_file` appearing ends training cleanly
    after the current step (the annotator's Cancel)."""
    from tqdm import tqdm

    if cfg.loss not in ("bce", "nfl"):
        raise ValueError(f"unknown --loss {cfg.loss!r}: use 'bce' or 'nfl'")
    if cfg.boundary_weight > 0 and cfg.loss != "bce":
        raise ValueError("--boundary-weight applies to the BCE pixel loss only")
    if cfg.max_minutes < 0:
        raise ValueError(f"--max-minutes must be >= 0, got {cfg.max_minutes!r}")
    if cfg.schedule not in ("cosine", "constant"):
        raise ValueError(f"unknown --schedule {cfg.schedule!r}: use 'cosine' or 'constant'")
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed + rank)

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    backbone = cfg.backbone or (backbone_of(cfg.init_weights) if cfg.init_weights else DEFAULT_BACKBONE)
    net = PointerSegNet(pretrained_backbone=cfg.init_weights is None, backbone=backbone)
    if cfg.init_weights:
        load_into(net, cfg.init_weights)
    net.to(device)
    set_train_mode(net, cfg.freeze_bn)
    anchor = [p.detach().clone() for p in net.parameters()] if cfg.anchor > 0 else None
    if not 0.0 <= cfg.ema < 1.0:
        raise ValueError(f"--ema must be in [0, 1), got {cfg.ema!r}")
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start = 0
    elapsed_before = 0.0  # training seconds of the legs before a resume (for max_minutes)
    if cfg.resume and ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
        found = backbone_of_state(state["net"])
        if found != backbone:
            raise WeightsError(f"checkpoint {ckpt_path} is of a {found} net, this run trains {backbone}: "
                               "resume with --backbone " + found + " or use another --out")
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        start = int(state["step"])
        elapsed_before = float(state.get("elapsed", 0.0))
    # From the start weights (or the resumed ones, when the checkpoint predates the average): never from zeros.
    ema = [p.detach().clone() for p in net.parameters()] if cfg.ema > 0 else None
    params = [p.detach() for p in net.parameters()]  # views of the live weights, made once for the step loop
    if ema is not None and cfg.resume and ckpt_path.is_file() and len(state.get("ema") or []) == len(ema):
        for e, saved in zip(ema, state["ema"]):
            e.copy_(saved)
    model = torch.nn.parallel.DistributedDataParallel(net) if distributed else net

    if not 0 < cfg.scale_min <= cfg.scale_max:
        raise ValueError(f"need 0 < --scale-min <= --scale-max, got {cfg.scale_min!r}, {cfg.scale_max!r}")
    scfg = SamplingConfig(size=cfg.crop, p_sweep=cfg.sweep, scale_range=(cfg.scale_min, cfg.scale_max),
                          rotate_deg=cfg.rotate_deg, p_grey=cfg.p_grey, p_blur=cfg.p_blur)
    exclude = held_out_names() if cfg.exclude_val else None
    train_sources, val_sources = split_sources(cfg.sources, cfg.val_fraction, exclude)
    # Replayed data keeps out the files a base run with the default split held out, so the base's validation
    # images stay unseen (they measure forgetting).
    train_sources += split_sources(cfg.replay, TrainConfig.val_fraction, exclude)[0]
    # Validation examples stay the same whatever the training mix, so runs compare.
    val_set = fixed_examples(val_sources, SamplingConfig(size=cfg.crop), cfg.val_examples) if rank == 0 else []
    cv2_threads = cv2.getNumThreads()
    if cfg.workers > 0:
        # The workers inherit this when they fork (at iter(loader) below; the parent's count is restored then):
        # one OpenCV thread per worker process, so many workers on a lent accelerator's host do not oversubscribe
        # its cores (see _loader_worker_init for why not in the worker).
        cv2.setNumThreads(1)
    loader = DataLoader(MixedExamples(train_sources, scfg, cfg.seed, start), batch_size=cfg.batch_size,
                        num_workers=cfg.workers, collate_fn=_collate, persistent_workers=cfg.workers > 0,
                        worker_init_fn=_loader_worker_init if cfg.workers > 0 else None,
                        prefetch_factor=4 if cfg.workers > 0 else None)
    if rank == 0:
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    log_path = out / "log.csv"
    # An empty log is a run killed before its first flush: it starts over with its header.
    new_log = not log_path.is_file() or start == 0 or log_path.stat().st_size == 0
    log_file = open(log_path, "w" if new_log else "a", newline="") if rank == 0 else None
    writer = csv.writer(log_file) if log_file else None
    if writer and new_log:
        writer.writerow(["step", "loss", "train_iou", "val_iou", "lr", "seconds"])
        log_file.flush()  # a SIGKILL before the first logged step must not leave a log without its header
    use_amp = device.type == "cuda"
    bar = tqdm(total=cfg.steps, initial=start, disable=rank != 0, desc="train", dynamic_ncols=True)
    t0 = time.time()
    budget_s = 60.0 * cfg.max_minutes
    clock = TrainingClock(elapsed_before)

    def elapsed() -> float:
        return clock.read()

    def shared_elapsed() -> float:
        # Under DDP every rank must see the same time, or they would part on the learning rate and on when to stop.
        e = elapsed()
        if distributed and budget_s:
            t = torch.tensor([e], dtype=torch.float64, device=device)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            e = float(t.item())
        return e

    losses, ious = [], []
    last_val = float("nan")
    step = start
    stopped = out_of_time = False
    it = iter(loader)
    cv2.setNumThreads(cv2_threads)
    sim_rng = np.random.default_rng([cfg.seed, rank, start])

    def checkpoint() -> None:
        nonlocal last_ckpt
        # The sampler's state is its seed and the step its stream started at (MixedExamples): a resume at `step`
        # starts the stream for that step, so no state of the loader worker process has to be saved.
        _atomic_torch_save({"net": net.state_dict(), "opt": opt.state_dict(), "step": step, "elapsed": elapsed(),
                            "sampler": {"seed": cfg.seed, "stream_start": step},
                            **({"ema": ema} if ema is not None else {})}, ckpt_path)
        last_ckpt = time.time()

    last_ckpt = time.time()
    leg_end = elapsed_before + 60.0 * cfg.leg_minutes if cfg.leg_minutes > 0 else None
    terminated = []
    previous_handlers = {}
    if rank == 0:
        # SIGTERM (a scheduler's stop, `kill`) and SIGINT (Ctrl+C): finish the step, checkpoint, leave cleanly.
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                previous_handlers[sig] = signal.signal(sig, lambda *_: terminated.append(True))
            except ValueError:  # not the main thread: no handler, the caller stops the run its own way
                break

    while step < cfg.steps:
        clock.tick()
        now = shared_elapsed()
        if budget_s and now >= budget_s:
            out_of_time = True
            break
        if terminated or (leg_end is not None and now >= leg_end):
            stopped = True
            break
        batch = _batch_to(next(it), device)
        if cfg.iterative > 0 and sim_rng.random() < cfg.iterative:
            rounds = int(sim_rng.integers(1, cfg.iterative_rounds + 1))
            # Drawn only when asked for, so runs without self_refine keep their random stream.
            add_clicks = ([bool(sim_rng.random() >= cfg.self_refine) for _ in range(rounds)] if cfg.self_refine > 0
                          else None)
            batch = simulate_corrections(net, batch, rounds, cfg.freeze_bn, use_amp, add_clicks)
        lr = _lr_at(step, cfg, now)
        for g in opt.param_groups:
            g["lr"] = lr
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits, score_logit = model(batch["image"], batch["pointer"], batch["roi"])
        loss, iou = segmentation_loss(logits.float(), score_logit, batch["target"], batch["valid"], cfg.loss,
                                      cfg.boundary_weight, cfg.boundary_band)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        if anchor is not None:
            with torch.no_grad():
                pull = lr * cfg.anchor
                for p, p0 in zip(net.parameters(), anchor):
                    p.add_(p0 - p, alpha=pull)
        if ema is not None:
            with torch.no_grad():
                torch._foreach_lerp_(ema, params, 1.0 - cfg.ema)
        step += 1
        losses.append(loss.item())
        ious.append(float(iou.mean()))
        bar.update(1)
        if rank == 0:
            if step % cfg.val_every == 0 or step == cfg.steps:
                last_val = validate(net, val_set, device, freeze_bn=cfg.freeze_bn)
            if step % cfg.log_every == 0 or step == cfg.steps:
                writer.writerow([step, f"{np.mean(losses):.4f}", f"{np.mean(ious):.4f}", f"{last_val:.4f}",
                                 f"{lr:.2e}", f"{time.time() - t0:.1f}"])
                log_file.flush()
                bar.set_postfix(loss=f"{np.mean(losses):.3f}", iou=f"{np.mean(ious):.3f}", val=f"{last_val:.3f}")
                losses, ious = [], []
            if (step % cfg.ckpt_every == 0 or step == cfg.steps
                    or (cfg.ckpt_minutes > 0 and time.time() - last_ckpt >= 60.0 * cfg.ckpt_minutes)):
                checkpoint()
            if cfg.keep_every and step % cfg.keep_every == 0:
                (out / "snapshots").mkdir(exist_ok=True)
                save_weights(net, out / "snapshots" / f"step_{step:06d}.safetensors",
                             {"steps": step, "sources": cfg.sources, "crop": cfg.crop, "val_iou": last_val})
        if stop_file and os.path.exists(stop_file):
            stopped = True
            break
    bar.close()
    if rank == 0 and out_of_time and step > start:
        last_val = validate(net, val_set, device, freeze_bn=cfg.freeze_bn)
        writer.writerow([step, f"{np.mean(losses):.4f}" if losses else "nan",
                         f"{np.mean(ious):.4f}" if ious else "nan", f"{last_val:.4f}", f"{lr:.2e}",
                         f"{time.time() - t0:.1f}"])
    for sig, handler in previous_handlers.items():
        signal.signal(sig, handler)
    summary = {"steps": step, "val_iou": last_val, "seconds": time.time() - t0, "stopped": stopped,
               "out_of_time": out_of_time, "terminated": bool(terminated),
               "loss": float(np.mean(losses)) if losses else None, "paused_s": round(clock.paused, 1)}
    if rank == 0:
        if stopped or out_of_time:
            checkpoint()
        save_weights(net, out / "weights.safetensors", {"steps": step, "sources": cfg.sources,
                                                        "crop": cfg.crop, "val_iou": last_val})
        if ema is not None:
            save_weights(ema_net(net, ema), out / "ema.safetensors",
                         {"steps": step, "sources": cfg.sources, "crop": cfg.crop, "ema": cfg.ema})
        else:  # an average left by an earlier call with --ema would pass for this call's
            (out / "ema.safetensors").unlink(missing_ok=True)
        log_file.close()
    if distributed:
        dist.destroy_process_group()
    return summary
