#!/bin/bash
# One training run on a lent accelerator (the `device` tool of this workplace), prepared so that the few minutes
# a task may be lent are spent training, not debugging. Here, once per session, before the call:
#
#   python -m train pack coco_mval_train camvid/train --data-root ../shared/data --out .devdata   # ~35 MiB
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl efficientnet-lite-pytorch==0.1.0
#
# then the device call, with carry [".devdata", ".whl"] and a timeout of 600 s:
#
#   MINUTES=7 bash tools/device_train.sh
#
# It continues from the bundled weights (INIT), trains for MINUTES of wall time with the cosine decay on the clock
# (train.trainer's max_minutes), and leaves in $OUT the final weights, two snapshots and the log. Measure them
# here on the held-out splits (python -m train.evaluate ... --held-out --weights ...) before anything ships.
set -euo pipefail
: "${OUT:?run this on the device machine, where OUT is set}"
MINUTES=${MINUTES:-7}
LR=${LR:-1e-4}
BATCH=${BATCH:-32}
WORKERS=${WORKERS:-$(( $(nproc) - 2 ))}
INIT=${INIT:-resources/pointer_seg.safetensors}
DATA=${DATA:-.devdata}
CROP=${CROP:-448}
RUN=${RUN:-/tmp/devrun}
[ -d "$DATA/coco_mval_train" ] || { echo "no $DATA/coco_mval_train: run python -m train pack here first and carry it"; exit 2; }
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
# The step count is only an upper bound: the clock ends the run. Of the snapshots kept every KEEP_EVERY steps, the
# two before the last come back beside the final weights ($OUT takes 8 files of at most 16 MiB).
python3 -m train --init-weights "$INIT" \
  --sources "masks:$DATA/coco_mval_train:2" "semantic:$DATA/camvid/train:1" synthetic:3000:0.5 \
  "copypaste:$DATA/coco_mval_train+semantic=$DATA/camvid/train:2" \
  --out "$RUN" --steps 1000000 --max-minutes "$MINUTES" --batch-size "$BATCH" --crop "$CROP" --lr "$LR" --warmup 100 \
  --val-every 250 --val-examples 64 --ckpt-every 250 --keep-every "${KEEP_EVERY:-1000}" --log-every 25 \
  --workers "$WORKERS" --seed "${SEED:-13}" --freeze-bn --iterative 0.4 2>&1 | tr '\r' '\n' | grep -v '^train:' || true
cp "$RUN/weights.safetensors" "$RUN/log.csv" "$RUN/config.json" "$OUT/"
ls "$RUN/snapshots" 2>/dev/null | tail -n 3 | head -n 2 | while read -r f; do cp "$RUN/snapshots/$f" "$OUT/"; done
tail -n 5 "$RUN/log.csv"
ls -la "$OUT"
