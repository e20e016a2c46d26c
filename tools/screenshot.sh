#!/usr/bin/env bash
# Screenshot of the real annotator under a virtual X server (Xvfb): opens an image, clicks it, grabs the window.
#   tools/screenshot.sh [IMAGE] [OUT.png] [extra app args, e.g. --demo-auto]
# Needs xvfb (apt-get install -y xvfb). The project for IMAGE is created in a temporary folder.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${1:-$ROOT/resources/sample.jpg}"
OUT="${2:-$ROOT/out/screenshot.png}"
shift $(( $# > 2 ? 2 : $# )) || true
PY="${PYTHON:-python}"
[ -x "$ROOT/.venv/bin/python" ] && [ -z "${PYTHON:-}" ] && PY="$ROOT/.venv/bin/python"
command -v xvfb-run >/dev/null || { echo "xvfb-run not found: apt-get install -y xvfb" >&2; exit 2; }
[ -f "$IMAGE" ] || { echo "no such image: $IMAGE" >&2; exit 2; }
mkdir -p "$(dirname "$OUT")"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
unset QT_QPA_PLATFORM  # the real xcb platform on the virtual display
cd "$ROOT"
xvfb-run -a -s "-screen 0 1400x900x24" \
  "$PY" -m annotator.app "$IMAGE" --project-dir "$TMP/project" --size 1280x800 \
  --screenshot "$OUT" --demo-click center "$@"
echo "wrote $OUT"
