#!/usr/bin/env bash
# One prepared GPU check of the fast path (meant to finish in under 9 minutes on one H100/H200-class GPU):
#   1. step time at 128/256/512 px: eager loop vs captured step (CUDA graph) vs captured K replicas (K = 1, 4, 16),
#      ms per step and per fit-step (bench/graph_speed.py);
#   2. the default loop against the bare loop (bench/fit_speed.py, settings default and metrics-every-50);
#   3. a 2400-step 512 px seed fit (F16, Gaussian sigma 25), eager vs captured: time and PSNR;
#   4. fits/hour at 128 px: whole 2400-step fits of 16 replicas at once, captured;
#   5. the denoise row of `dipsearch reproduce` at 512 px on classic9 with dip, dip-stop and cbm3d;
#   6. restore with K = 4 members as one batch (--replicas on) against one after another (off) and against a
#      single member, at 128 px (the demo image) and 512 px (F16): time, restored PSNR (bench/replica_restore.py).
# Usage: bash bench/gpu_check.sh [--device cuda|cpu] [--quick] [--data DIR] [--out DIR] [--repro-images K]
#   --quick: tiny sizes and iterations, to check the script end to end (e.g. on a CPU, where "captured" is
#            the captured loop's Python run eagerly, labelled "ring", and --cuda-graph on is not available).
#   --out: where the JSON and logs go (default bench/results/gpu_check_<device>).
#   --repro-images K: section 5 on the first K classic9 images (default all 9; 1 with --quick).
# A section that fails is reported and the next one still runs; the exit status is 1 if any failed.
set -uo pipefail
DEVICE=cuda
QUICK=0
OUT=""
REPRO_IMAGES=""
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="$ROOT/../shared/data"
[ -d "$DATA" ] || DATA="$ROOT/shared/data"  # a checkout that carries shared/ inside it
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --data) DATA="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --repro-images) REPRO_IMAGES="$2"; shift 2 ;;
    *) echo "usage: bash bench/gpu_check.sh [--device cuda|cpu] [--quick] [--data DIR] [--out DIR] [--repro-images K]" >&2
       exit 2 ;;
  esac
done
cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python3}"
OUT="${OUT:-$ROOT/bench/results/gpu_check_$DEVICE}"
mkdir -p "$OUT"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

MODES=(eager captured replicas-1 replicas-4 replicas-16)
if [ "$QUICK" = 1 ]; then
  SIZES="64"; SHORT=2; LONG=3; SECONDS_EACH=0.3; HOUR_SIZE=64; HOUR_ITERS=6
  PSNR_ARGS=(--demo --crop 64 --iters 20)
  REPRO_ARGS=(--size 64 --images "${REPRO_IMAGES:-1}" --iters 150)  # dip-stop's EMV warms up for 100 steps
  REPLICA_RUNS=("--crop 48 --iters 150")  # auto stopping's EMV warms up for 100 steps
else
  SIZES="128 256 512"; SHORT=20; LONG=200; SECONDS_EACH=2.5; HOUR_SIZE=128; HOUR_ITERS=2400
  REPRO_ARGS=(--size 512)
  [ -z "$REPRO_IMAGES" ] || REPRO_ARGS+=(--images "$REPRO_IMAGES")
  if [ -f "$DATA/classic9/F16.png" ]; then
    PSNR_ARGS=(--clean "$DATA/classic9/F16.png" --crop 512 --iters 2400)
    REPLICA_RUNS=("" "--clean $DATA/classic9/F16.png --crop 512")
  else
    echo "note: $DATA/classic9/F16.png not found; the PSNR check uses the 128 px demo image" >&2
    PSNR_ARGS=(--demo --iters 2400)
    REPLICA_RUNS=("")
  fi
fi
THREADS=()
if [ "$DEVICE" = cpu ]; then
  THREADS=(--threads 1)
  export OMP_NUM_THREADS=1
fi
CAPTURED=on
[ "$DEVICE" = cuda ] || CAPTURED=auto  # no CUDA graph off CUDA: "auto" runs the eager loop there
START=$(date +%s)
FAILED=0
section() {  # section NAME COMMAND...: runs it, reports a failure and carries on
  local name="$1"; shift
  local t0=$(date +%s)
  "$@" || { echo "!! section '$name' failed (exit $?)"; FAILED=1; }
  echo "   ($name: $(( $(date +%s) - t0 )) s)"
}

echo "== 1. step time: eager vs captured vs captured replicas ($DEVICE; sizes $SIZES)"
section steps "$PY" bench/graph_speed.py --device "$DEVICE" --sizes $SIZES --modes "${MODES[@]}" \
  --short "$SHORT" --long "$LONG" "${THREADS[@]}" --json "$OUT/graph_speed.json"

echo "== 2. the default loop vs bare ($DEVICE; sizes $SIZES)"
section bare "$PY" bench/fit_speed.py --device "$DEVICE" --sizes $SIZES --seconds "$SECONDS_EACH" --rounds 1 \
  --settings default metrics "${THREADS[@]}" --json "$OUT/fit_speed.json"

psnr_fit() {
  local mode="$1"
  "$PY" -m dipsearch fit "${PSNR_ARGS[@]}" --device "$DEVICE" --cuda-graph "$mode" --no-progress \
    --out "$TMP/$mode" > "$TMP/$mode.log" 2>&1 || { cat "$TMP/$mode.log"; return 1; }
  local summary
  summary=$(ls "$TMP/$mode"/fit/*/summary.json)
  cp "$summary" "$OUT/psnr_graph_$mode.json"
  "$PY" -c "import json,sys; s=json.load(open(sys.argv[1])); print(f\"cuda-graph {sys.argv[2]}: {s['iters_run']} iterations in {s['seconds']:.1f} s, PSNR final {s['psnr_final']:.2f} dB, EMA {s['psnr_ema']:.2f} dB, observed {s['psnr_observed']:.2f} dB\")" "$summary" "$mode"
}
echo "== 3. a seed fit, eager vs captured (${PSNR_ARGS[*]})"
section "fit eager" psnr_fit off
section "fit captured" psnr_fit "$CAPTURED"

echo "== 4. fits/hour at $HOUR_SIZE px: 16 replicas, whole fits of $HOUR_ITERS steps"
section fits_per_hour "$PY" bench/graph_speed.py --device "$DEVICE" --sizes "$HOUR_SIZE" --modes replicas-16 \
  --short 1 --long $(( HOUR_ITERS - 1 )) --fit-iters "$HOUR_ITERS" "${THREADS[@]}" --json "$OUT/fits_per_hour.json"

echo "== 5. dipsearch reproduce denoise (${REPRO_ARGS[*]}; dip, dip-stop, cbm3d)"
repro() {
  "$PY" -m dipsearch reproduce denoise "${REPRO_ARGS[@]}" --data "$DATA" --methods dip,dip-stop,cbm3d \
    --device "$DEVICE" "${THREADS[@]}" --no-report --out "$TMP/repro" > "$TMP/repro.log" 2>&1 \
    || { tail -20 "$TMP/repro.log"; return 1; }
  local summary
  summary=$(ls "$TMP/repro"/reproduce/*/summary.csv)
  cp "$summary" "$OUT/reproduce_denoise_summary.csv"
  cat "$summary"
}
section reproduce repro

echo "== 6. restore, K = 4 members: one batch vs one after another vs a single member ($DEVICE)"
replica_restore() {
  local i=0 run
  for run in "${REPLICA_RUNS[@]}"; do
    # shellcheck disable=SC2086 - each run's flags are words
    "$PY" bench/replica_restore.py --device "$DEVICE" --ensemble 4 --with-one $run "${THREADS[@]}" \
      --json "$OUT/replica_restore_$i.json" || return 1
    i=$((i + 1))
  done
}
section replica_restore replica_restore
echo "== done in $(( $(date +%s) - START )) s; JSON in $OUT"
exit "$FAILED"
