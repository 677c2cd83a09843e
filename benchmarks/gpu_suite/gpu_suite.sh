#!/usr/bin/env bash
# Every GPU measurement of issue 12 in one prepared run (< 8 minutes on one H100 / H200):
#
#   1. step    ViT-S/16 iBOT, 2x224 + 10x96, bf16, batch $GPU_SUITE_BATCH (128): AttMask-High and
#              random masking, eager and torch.compile'd, interleaved: img/s per GPU, step FLOPs
#              (torch.utils.flop_counter), MFU against the dense bf16 peak (989 TFLOP/s on
#              H100/H200), peak memory, compile time, AttMask-High overhead over random.
#   2. attention  the same step eager with the fused (SDPA) vs the explicit attention path.
#   3. knn     k-NN with our torch backend on the GPU (and faiss-gpu if installed) vs a DINO-style
#              k-NN: 1.28M x 384 train vs 50k x 384 test synthetic features.
#   4. ffcv    the FFCV multi-crop loader with the colour ops on the GPU, next to the CPU paths;
#              skipped with a message where ffcv is not installed.
#
# Usage:  bash benchmarks/gpu_suite/gpu_suite.sh [--cpu-smoke]      (or GPU_SUITE_SMOKE=1)
#   --cpu-smoke  runs every part shrunk on the CPU (demo regime, aot_eager compile, 20k-row k-NN,
#                64-image loader run): checks the whole suite end to end in a few minutes.
# Results: $OUT if set, else benchmarks/gpu_suite/results/gpu/ (smoke: benchmarks/gpu_suite/results/cpu_smoke/):
#   gpu_suite.md (all tables + goal checks), gpu_suite.json (all numbers), gpu_suite.log.
# Needs torch and the package's core dependencies (numpy, omegaconf, pyyaml, tqdm, pillow; see
# GPU_SUITE_WHEELS below); ffcv, faiss and submitit are optional (checked, never imported at top level).
set -uo pipefail
cd "$(dirname "$0")/../.."  # the repository root: the parts run as python -m benchmarks.<topic>.<script>

source benchmarks/suite_common.sh
suite_parse_args gpu_suite.sh "${GPU_SUITE_SMOKE:-0}" "$@"
# The package's own dependencies beyond torch; a GPU machine without network can install them from
# a carried wheel folder: pip download omegaconf pyyaml tqdm -d wheels  (then GPU_SUITE_WHEELS=wheels)
suite_require gpu_suite.sh GPU_SUITE_WHEELS "omegaconf pyyaml tqdm numpy pillow" torch numpy omegaconf yaml tqdm PIL
suite_require_gpu gpu_suite.sh GPU_SUITE_SMOKE  # before the results folder: a recorded gpu_suite.log stays
if [ "$SMOKE" = 1 ]; then
  RESULTS="${OUT:-benchmarks/gpu_suite/results/cpu_smoke}"
else
  RESULTS="${OUT:-benchmarks/gpu_suite/results/gpu}"
fi
mkdir -p "$RESULTS"
PARTS="$(mktemp -d)"
LOG="$RESULTS/gpu_suite.log"
: > "$LOG"
COMMAND="bash benchmarks/gpu_suite/gpu_suite.sh $*"
[ "$SMOKE" = 1 ] && [ "$*" = "" ] && COMMAND="GPU_SUITE_SMOKE=1 bash benchmarks/gpu_suite/gpu_suite.sh"
START=$(date +%s)

if [ "$SMOKE" = 1 ]; then
  DEVICE=cpu
  STEP_ARGS=(--regimes demo:16 --amp none --compile --compile-backend aot_eager --warmup 1 --rounds 2 --steps 1)
  ATTN_ARGS=(--regimes demo:16 --amp none --warmup 1 --rounds 2 --steps 1)
  KNN_ARGS=(--n-train 20000 --n-test 500 --device cpu)
  FFCV_ARGS=(--images 64 --workers 2 --batch-size 16 --batches 2 --rounds 2 --device-colour cpu)
  LIMIT_STEP=900; LIMIT_ATTN=300; LIMIT_KNN=300; LIMIT_FFCV=600
else
  DEVICE=cuda
  BATCH="${GPU_SUITE_BATCH:-128}"
  STEP_ARGS=(--regimes "vits16:$BATCH" --amp bf16 --compile --warmup 3 --rounds 5 --steps 10)
  ATTN_ARGS=(--regimes "vits16:$BATCH" --amp bf16 --warmup 2 --rounds 3 --steps 5)
  KNN_ARGS=(--device cuda)
  FFCV_ARGS=(--images 1000 --workers "$(( $(nproc) > 16 ? 16 : $(nproc) ))" --batch-size 64 --batches 8 --rounds 3
             --device-colour cuda)
  LIMIT_STEP=270; LIMIT_ATTN=60; LIMIT_KNN=60; LIMIT_FFCV=90  # 8 minutes in all, with margin
fi

STATUS=()
run_part() {  # name, time limit (s), command...
  local name="$1" limit="$2"; shift 2
  local t0=$(date +%s) rc=0
  echo "== $name: $*" | tee -a "$LOG"
  timeout "$limit" "$@" >>"$LOG" 2>&1 || rc=$?
  local status="ok"
  [ "$rc" = 124 ] && status="timed out after ${limit} s"
  [ "$rc" != 0 ] && [ "$rc" != 124 ] && status="failed (exit $rc; see gpu_suite.log)"
  echo "== $name: $status in $(( $(date +%s) - t0 )) s" | tee -a "$LOG"
  STATUS+=("$name=$status")
}

run_part step "$LIMIT_STEP" "$PY" -m benchmarks.pretrain_step.pretrain_step "${STEP_ARGS[@]}" --device "$DEVICE" \
  --strategies attmask_high,random --attention fused --flops --out "$PARTS/step"
run_part attention "$LIMIT_ATTN" "$PY" -m benchmarks.pretrain_step.pretrain_step "${ATTN_ARGS[@]}" --device "$DEVICE" \
  --strategies attmask_high --attention fused,explicit --out "$PARTS/attention"
run_part knn "$LIMIT_KNN" "$PY" -m benchmarks.knn.knn_gpu "${KNN_ARGS[@]}" --out "$PARTS/knn"
if "$PY" -c "import ffcv, skimage, sklearn" >/dev/null 2>&1; then
  run_part ffcv "$LIMIT_FFCV" "$PY" -m benchmarks.ffcv_loader.ffcv_loader "${FFCV_ARGS[@]}" --out "$PARTS/ffcv.md"
else
  echo "== ffcv: skipped: ffcv (or scikit-image / scikit-learn for the test photos) is not installed here" \
    | tee -a "$LOG"
  STATUS+=("ffcv=skipped: ffcv, scikit-image or scikit-learn not installed on this machine")
fi

"$PY" -m benchmarks.gpu_suite.gpu_summary --parts "$PARTS" --results "$RESULTS" --command "$COMMAND" \
  --seconds "$(( $(date +%s) - START ))" --smoke "$SMOKE" --status "${STATUS[@]}" | tee -a "$LOG"
rm -rf "$PARTS"
for s in "${STATUS[@]}"; do
  case "$s" in *=ok|ffcv=skipped*) ;; *) exit 1 ;; esac
done
