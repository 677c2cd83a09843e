#!/usr/bin/env bash
# The Fashion-MNIST masking study (issue 15, item 4) at a larger budget on one GPU, in one prepared,
# time-boxed run: every variant of benchmarks/fmnist_study/ (none, random, block, attmask_high,
# attmask_hint, attmask_low, SimPool + attmask_high) x seeds 0 1 2, each pretrained on all 50k
# train_fit images for 6 epochs (the CPU sittings used 10k x 5 and 2k x 2) with the demo recipe, and
# evaluated on the validation split (k-NN k=20 and the linear probe; the test split is never used).
#
# One worker process per variant runs at the same time (the ViT-pico steps leave most of a GPU idle),
# each with --train-only; every worker stops at the time limit. Finished runs are recorded in
# $OUT/results.jsonl; then one --table-only pass adds the pixel / random-init baselines and writes
# results.md (mean +- std, differences marked only beyond the seed std) and the plots. Resumable:
# run it again (with the committed results.jsonl in the tree) and it trains only what is missing.
#
# Usage:  bash benchmarks/fmnist_study/gpu.sh [--cpu-smoke]       (or FMNIST_GPU_SMOKE=1)
#   --cpu-smoke  the same pipeline shrunk on the CPU (256 images, 1 epoch, 2 variants, 1 seed, small
#                evaluation sets), results in a temporary folder unless OUT is set: checks the script.
# Environment: FMNIST_GPU_LIMIT (s, default 420: the workers' time limit), FMNIST_GPU_EPOCHS (6),
#   FMNIST_GPU_TRAIN (50000), FMNIST_GPU_SEEDS ("0 1 2"), FMNIST_GPU_THREADS (CPU threads per worker, 2),
#   OUT (results folder, default benchmarks/fmnist_study/results/gpu), RUNS (run folders, default
#   runs/fmnist_study_gpu), FMNIST_GPU_WHEELS (a folder of wheels to install the package's
#   dependencies from on a machine without network), PYTHON.
# Needs the Fashion-MNIST IDX files under data/ (make demo or the first study run puts them there;
# carry data/fashion-mnist to a machine without apt).
set -uo pipefail
cd "$(dirname "$0")/../.."

source benchmarks/suite_common.sh
suite_parse_args fmnist_study/gpu.sh "${FMNIST_GPU_SMOKE:-0}" "$@"
suite_require fmnist_study/gpu.sh FMNIST_GPU_WHEELS "omegaconf pyyaml tqdm numpy pillow tensorboard matplotlib scipy opencv-python scikit-image" \
  torch torchvision numpy omegaconf yaml tqdm PIL tensorboard matplotlib scipy cv2 skimage
suite_require_gpu fmnist_study/gpu.sh FMNIST_GPU_SMOKE

VARIANTS=(none random block attmask_high attmask_hint attmask_low simpool_attmask_high)
if [ "$SMOKE" = 1 ]; then
  OUT="${OUT:-$(mktemp -d /tmp/fmnist_gpu_smoke.XXXX)}"
  RUNS="${RUNS:-$OUT/runs}"
  LIMIT="${FMNIST_GPU_LIMIT:-600}"
  VARIANTS=(none attmask_high)
  SEEDS="${FMNIST_GPU_SEEDS:-0}"
  BUDGET=(--train-size "${FMNIST_GPU_TRAIN:-256}" --epochs "${FMNIST_GPU_EPOCHS:-1}" --set data.batch_size=64)
  EVAL=(--bank-size 500 --val-size 200 --knn-bank 200 --knn-queries 100 --linear-epochs 2 --no-attention-eval)
else
  OUT="${OUT:-benchmarks/fmnist_study/results/gpu}"
  RUNS="${RUNS:-runs/fmnist_study_gpu}"
  LIMIT="${FMNIST_GPU_LIMIT:-420}"
  SEEDS="${FMNIST_GPU_SEEDS:-0 1 2}"
  BUDGET=(--train-size "${FMNIST_GPU_TRAIN:-50000}" --epochs "${FMNIST_GPU_EPOCHS:-6}")
  EVAL=(--bank-size 10000 --knn-bank 5000 --knn-queries 2000 --bench "$RUNS/locbench")
fi
mkdir -p "$OUT" "$RUNS"
LOG="$OUT/fmnist_study_gpu.log"
COMMON=("${BUDGET[@]}" "${EVAL[@]}" --seeds $SEEDS --runs "$RUNS" --out "$OUT")
echo "== $(date -u '+%Y-%m-%d %H:%M UTC') bash benchmarks/fmnist_study/gpu.sh $*  (limit ${LIMIT} s per worker)" \
  | tee -a "$LOG"
"$PY" -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'CPU')" \
  | tee -a "$LOG"

# the training subset is written once, before the workers share it (--table-only --train-only: writes
# the subset and records finished runs; trains nothing, makes no tables)
"$PY" -m benchmarks.fmnist_study "${COMMON[@]}" --variants "${VARIANTS[@]}" --table-only --train-only \
  >>"$LOG" 2>&1 || { echo "fmnist_study/gpu.sh: preparing the data failed (see $LOG)" >&2; exit 1; }

START=$(date +%s)
PIDS=()
for v in "${VARIANTS[@]}"; do
  OMP_NUM_THREADS="${FMNIST_GPU_THREADS:-2}" timeout "$LIMIT" "$PY" -m benchmarks.fmnist_study "${COMMON[@]}" \
    --variants "$v" --train-only >"$OUT/worker_$v.log" 2>&1 &
  PIDS+=($!)
done
FAILED=()
for i in "${!PIDS[@]}"; do
  rc=0; wait "${PIDS[$i]}" || rc=$?
  case "$rc" in
    0) ;;
    124) echo "== worker ${VARIANTS[$i]}: stopped at the time limit (its finished runs are recorded)" | tee -a "$LOG" ;;
    *) echo "== worker ${VARIANTS[$i]}: failed (exit $rc; see $OUT/worker_${VARIANTS[$i]}.log)" | tee -a "$LOG"
       FAILED+=("${VARIANTS[$i]}") ;;
  esac
done
echo "== workers done in $(( $(date +%s) - START )) s" | tee -a "$LOG"

# baselines, table and plots once, from everything recorded for this budget
"$PY" -m benchmarks.fmnist_study "${COMMON[@]}" --variants "${VARIANTS[@]}" --table-only 2>>"$LOG" | tee -a "$LOG"
echo "== results: $OUT (results.md, results.jsonl, knn_vs_epoch_*.png, attention_*.png, worker logs)" | tee -a "$LOG"
[ "${#FAILED[@]}" = 0 ]
