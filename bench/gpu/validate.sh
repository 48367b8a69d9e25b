#!/usr/bin/env bash
# GPU validation in one go, for a machine with an NVIDIA GPU, the CUDA toolkit, CMake and Ninja (no Node):
#   1. configure + build the engine, native tests and hayate_bench with plain CMake (the Node addon target
#      only exists under cmake-js, so it is skipped here),
#   2. hayate_native_tests (the CUDA-vs-CPU op checks run when a device is present),
#   3. hayate_bench kernels --backend cuda (every op vs its baseline; attention on the default shapes),
#   4. hayate_bench model --shape qwen3-0.6b --backend cuda (end-to-end generation throughput),
#   5. bench/gpu/torch_baselines.py (PyTorch SDPA / sort-based top-p / matmul on the same shapes),
# writing every output, nvidia-smi's report and a summary to the output directory.
#
# usage: bench/gpu/validate.sh [OUT_DIR]      (default: $OUT, else bench/results/gpu-<UTC date>)
# environment:
#   HAYATE_CUDA_ARCHS  CUDA architectures to build (default: this GPU's, from nvidia-smi; else "80;90a")
#   BUILD_DIR          build directory (default build-gpu)
#   STEP_TIMEOUT       seconds allowed per step (default 900; the build gets 2x)
#   KERNEL_OPS         --ops for the kernel benchmark (default: all)
#   KERNEL_SHAPES      --shapes for the attention cases, if hayate_bench accepts it (default: built-in)
#   SKIP_TORCH=1       skip the PyTorch baselines
# Exit status: 0 when every step succeeded, 1 otherwise (later steps still run after a failed one,
# except that nothing runs after a failed build).
set -u -o pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
OUT_DIR="${1:-${OUT:-$ROOT/bench/results/gpu-$(date -u +%Y%m%d-%H%M%S)}}"
mkdir -p "$OUT_DIR"
BUILD="${BUILD_DIR:-build-gpu}"
STEP_TIMEOUT="${STEP_TIMEOUT:-900}"
SUMMARY="$OUT_DIR/summary.txt"
: > "$SUMMARY"
status=0

log() { echo "[validate $(date -u +%H:%M:%S)] $*" | tee -a "$SUMMARY" >&2; }

# run_step NAME TIMEOUT CMD...: stdout -> NAME.out, stderr -> NAME.err, exit code and seconds -> summary.
run_step() {
  local name=$1 limit=$2
  shift 2
  log "$name: $*"
  local t0 rc
  t0=$(date +%s)
  timeout "$limit" "$@" > "$OUT_DIR/$name.out" 2> "$OUT_DIR/$name.err"
  rc=$?
  log "$name: exit $rc after $(( $(date +%s) - t0 )) s$([ "$rc" = 124 ] && echo ' (timed out)')"
  [ "$rc" -eq 0 ] || status=1
  return "$rc"
}

# ---- the machine ----
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
  echo "host: $(uname -a)"
  echo "nvcc: $(nvcc --version 2>/dev/null | tail -n 1 || echo 'not found')"
  echo "cmake: $(cmake --version 2>/dev/null | head -n 1 || echo 'not found')"
} > "$OUT_DIR/machine.txt"
nvidia-smi > "$OUT_DIR/nvidia-smi.txt" 2>&1 || log "nvidia-smi failed (no driver?)"
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm,clocks.max.memory \
  --format=csv > "$OUT_DIR/nvidia-smi-query.csv" 2>&1 || true

# ---- architectures: this GPU's only (half the compile time of the default pair) ----
if [ -z "${HAYATE_CUDA_ARCHS:-}" ]; then
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .')
  case "$cap" in
    90) HAYATE_CUDA_ARCHS="90a" ;;
    [0-9][0-9]) HAYATE_CUDA_ARCHS="$cap" ;;
    *) HAYATE_CUDA_ARCHS="80;90a" ;;
  esac
fi
log "CUDA architectures: $HAYATE_CUDA_ARCHS"

# ---- 1. build ----
GEN=()
command -v ninja > /dev/null 2>&1 && GEN=(-G Ninja)
if ! run_step configure "$STEP_TIMEOUT" cmake -S . -B "$BUILD" ${GEN[@]+"${GEN[@]}"} -DCMAKE_BUILD_TYPE=Release -DHAYATE_CUDA=ON \
    "-DHAYATE_CUDA_ARCHS=$HAYATE_CUDA_ARCHS" "-DCMAKE_CUDA_ARCHITECTURES=$HAYATE_CUDA_ARCHS"; then
  log "configure failed: see $OUT_DIR/configure.err"
  exit 1
fi
if ! run_step build "$(( STEP_TIMEOUT * 2 ))" cmake --build "$BUILD" -j "$(nproc)"; then
  log "build failed: see $OUT_DIR/build.out / build.err"
  exit 1
fi

# ---- 2. native tests (op checks CUDA vs CPU) ----
run_step native_tests "$STEP_TIMEOUT" "$BUILD/hayate_native_tests"
grep -E "passed|FAIL|SKIPPED" "$OUT_DIR/native_tests.out" "$OUT_DIR/native_tests.err" | tail -n 40 >> "$SUMMARY" || true

# ---- 3. kernel benchmark ----
kargs=(kernels --backend cuda --repeats 20)
[ -n "${KERNEL_OPS:-}" ] && kargs+=(--ops "$KERNEL_OPS")
[ -n "${KERNEL_SHAPES:-}" ] && kargs+=(--shapes "$KERNEL_SHAPES")
run_step kernels "$STEP_TIMEOUT" "$BUILD/hayate_bench" "${kargs[@]}"
[ -s "$OUT_DIR/kernels.out" ] && cp "$OUT_DIR/kernels.out" "$OUT_DIR/kernels-cuda.json"

# ---- 4. end to end: generation on the qwen3-0.6b shape ----
run_step model "$STEP_TIMEOUT" "$BUILD/hayate_bench" model --shape qwen3-0.6b --backend cuda
[ -s "$OUT_DIR/model.out" ] && cp "$OUT_DIR/model.out" "$OUT_DIR/model-qwen3-0.6b-cuda.json"

# ---- 5. PyTorch baselines on the same shapes ----
if [ "${SKIP_TORCH:-0}" != 1 ]; then
  PY=$(command -v python3 || command -v python || true)
  if [ -n "$PY" ]; then
    targs=()
    [ -n "${KERNEL_SHAPES:-}" ] && targs+=(--shapes "$KERNEL_SHAPES")
    run_step torch_baselines "$STEP_TIMEOUT" "$PY" bench/gpu/torch_baselines.py ${targs[@]+"${targs[@]}"}
    [ -s "$OUT_DIR/torch_baselines.out" ] && cp "$OUT_DIR/torch_baselines.out" "$OUT_DIR/torch-baselines.json"
  else
    log "torch_baselines: no python3 found, skipped"
  fi
fi

log "done: overall status $status; outputs in $OUT_DIR"
exit "$status"
