#!/usr/bin/env bash
# One prepared GPU check (about 5 minutes on one H100-class GPU):
#   1. fit_speed at 128/256/512 px: bare loop vs the engine's default, metrics-every-50, bf16, channels_last
#      (s/it and ratio to bare); torch.compile at 256 px only (each new network recompiles, about a minute);
#   2. aggregate fits/hour with 1, 2, 4, 8 concurrent fit processes at 128 px;
#   3. PSNR and time of a 2400-iteration 512 px seed fit (F16, Gaussian sigma 25), fp32 vs bf16.
# Usage: bash bench/gpu_check.sh [--device cuda|cpu] [--quick] [--data DIR] [--out DIR]
#   --quick: tiny sizes and iterations, to check the script end to end (e.g. on a CPU).
#   --out: where the JSON goes (default bench/results/gpu_check_<device>).
# A section that fails is reported and the next one still runs; the exit status is 1 if any failed.
set -uo pipefail
DEVICE=cuda
QUICK=0
OUT=""
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="$ROOT/../shared/data"
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --data) DATA="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "usage: bash bench/gpu_check.sh [--device cuda|cpu] [--quick] [--data DIR] [--out DIR]" >&2; exit 2 ;;
  esac
done
cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python3}"
OUT="${OUT:-$ROOT/bench/results/gpu_check_$DEVICE}"
mkdir -p "$OUT"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

if [ "$QUICK" = 1 ]; then
  SIZES="64"; COMPILE_SIZE=64; SECONDS_EACH=0.3; ROUNDS=1; PROCS="1 2"; CONC_ITERS=10; CONC_SIZE=64
  PSNR_ARGS=(--demo --crop 64 --iters 20)
else
  SIZES="128 256 512"; COMPILE_SIZE=256; SECONDS_EACH=2.5; ROUNDS=2; PROCS="1 2 4 8"; CONC_ITERS=300; CONC_SIZE=128
  if [ -f "$DATA/classic9/F16.png" ]; then
    PSNR_ARGS=(--clean "$DATA/classic9/F16.png" --crop 512 --iters 2400)
  else
    echo "note: $DATA/classic9/F16.png not found; the PSNR check uses the 128 px demo image" >&2
    PSNR_ARGS=(--demo --iters 2400)
  fi
fi
THREADS=()
if [ "$DEVICE" = cpu ]; then
  THREADS=(--threads 1)
  export OMP_NUM_THREADS=1  # CPU fits side by side: one thread each, no oversubscription
fi
START=$(date +%s)
FAILED=0
section() {  # section NAME COMMAND...: runs it, reports a failure and carries on
  local name="$1"; shift
  local t0=$(date +%s)
  "$@" || { echo "!! section '$name' failed (exit $?)"; FAILED=1; }
  echo "   ($name: $(( $(date +%s) - t0 )) s)"
}

echo "== 1. fit speed vs bare ($DEVICE; sizes $SIZES)"
section speed "$PY" bench/fit_speed.py --device "$DEVICE" --sizes $SIZES --seconds "$SECONDS_EACH" \
  --rounds "$ROUNDS" --settings default metrics bf16 channels_last "${THREADS[@]}" --json "$OUT/fit_speed.json"
if [ "$DEVICE" = cuda ]; then
  echo "== 1b. torch.compile vs bare at $COMPILE_SIZE px (one round; the warm-up includes compilation)"
  section compile "$PY" bench/fit_speed.py --device cuda --sizes "$COMPILE_SIZE" --seconds "$SECONDS_EACH" \
    --rounds 1 --warmup 10 --settings default compile --json "$OUT/fit_speed_compile.json"
fi

echo "== 2. concurrent fits at $CONC_SIZE px ($PROCS processes)"
section concurrent "$PY" bench/fit_speed.py --mode concurrent --device "$DEVICE" --sizes "$CONC_SIZE" \
  --procs $PROCS --iters "$CONC_ITERS" --threads 1 --json "$OUT/concurrent.json"

psnr_fit() {
  local precision="$1"
  "$PY" -m dipsearch fit "${PSNR_ARGS[@]}" --device "$DEVICE" --precision "$precision" --no-progress \
    --out "$TMP/$precision" > "$TMP/$precision.log" 2>&1 || { cat "$TMP/$precision.log"; return 1; }
  local summary
  summary=$(ls "$TMP/$precision"/fit/*/summary.json)
  cp "$summary" "$OUT/psnr_$precision.json"
  "$PY" -c "import json,sys; s=json.load(open(sys.argv[1])); print(f\"{sys.argv[2]}: {s['iters_run']} iterations in {s['seconds']:.1f} s, PSNR final {s['psnr_final']:.2f} dB, EMA {s['psnr_ema']:.2f} dB, observed {s['psnr_observed']:.2f} dB\")" "$summary" "$precision"
}
echo "== 3. PSNR of a seed fit, fp32 vs bf16 (${PSNR_ARGS[*]})"
for precision in fp32 bf16; do
  section "psnr $precision" psnr_fit "$precision"
done
echo "== done in $(( $(date +%s) - START )) s; JSON in $OUT"
exit "$FAILED"
