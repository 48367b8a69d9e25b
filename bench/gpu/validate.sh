#!/usr/bin/env bash
# GPU validation in one go, for a machine with an NVIDIA GPU, the CUDA toolkit and CMake (Ninja and
# PyTorch used when present; no Node needed). Most important first; a failing step never stops the ones
# after it (only a failed build does, since nothing can run without it):
#   1. configure + build hayate_native_tests and hayate_bench with plain CMake, for this GPU's architecture
#      only (nvcc found on its own: $CUDACXX, PATH, /usr/local/cuda/bin, /usr/local/cuda-*/bin newest first),
#   2. the CUDA op checks, one process per family (`hayate_native_tests cuda_op/<family>/`), so that a device
#      fault in one family cannot poison the others,
#   3. hayate_bench train --backend cuda: LoRA forward+backward at 512 and 2048 tokens, one whole GRPO step,
#   4. hayate_bench kernels --backend cuda: every op verified against its baseline, then timed,
#   5. bench/gpu/torch_baselines.py: PyTorch on the same shapes (SDPA, matmul, sort-based top-p, log-prob,
#      transformers + PEFT LoRA forward/backward),
#   6. the native tests that need no GPU (everything but the CUDA op checks).
# Then summary.md (bench/gpu/summarize.py): the device, pass/fail per op-check family, each benchmark's
# figure next to PyTorch's, and the raw JSON beside it, ready to commit to bench/results/.
#
# usage: bench/gpu/validate.sh [--dry-run] [OUT_DIR]     (OUT_DIR default: $OUT, else bench/results/gpu-<UTC time>)
#   --dry-run   configure and build (nvcc needed, no GPU), enumerate the op-check families, compile-check the
#               Python, write summary.md, and list every GPU step with its command instead of running it.
#               Exit 0 when the build succeeded. CI runs it (tests/gpu-validate-dry-run.test.ts).
# environment:
#   HAYATE_CUDA_ARCHS  CUDA architectures to build (default: this GPU's, from nvidia-smi; 90a without a GPU)
#   BUILD_DIR          build directory (default build-gpu, relative to the repository root)
#   BUILD_JOBS         parallel compile jobs (default: nproc)
#   TIME_BUDGET        seconds for the whole run, build included (default 660); each step gets at most its
#                      own cap and what is left of this, and a step with under 15 s left is skipped
#   KERNEL_OPS         --ops for the kernel benchmark (default: all)
#   KERNEL_SHAPES      --shapes for the attention cases (default: built-in, the same in torch_baselines.py)
#   BUILD_TIMEOUT      seconds the build may take (default 420; dry run 3000, budget 3600)
#   SKIP_TORCH=1       skip the PyTorch baselines
# Exit status: 0 when every step succeeded, 1 otherwise.
set -u -o pipefail

DRY_RUN=0
OUT_ARG=""
for a in "$@"; do
  case "$a" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
    -*) echo "validate.sh: unknown option '$a' (--dry-run, --help)" >&2; exit 2 ;;
    *) [ -z "$OUT_ARG" ] || { echo "validate.sh: one output directory at most" >&2; exit 2; }; OUT_ARG=$a ;;
  esac
done

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
OUT_DIR="${OUT_ARG:-${OUT:-$ROOT/bench/results/gpu-$(date -u +%Y%m%d-%H%M%S)}}"
mkdir -p "$OUT_DIR" || exit 2
OUT_DIR=$(cd "$OUT_DIR" && pwd)
BUILD="${BUILD_DIR:-build-gpu}"
JOBS="${BUILD_JOBS:-$(nproc 2>/dev/null || echo 4)}"
# a dry run (CI, a few cores, no GPU) only builds: it gets the time a slow build needs
BUDGET="${TIME_BUDGET:-$([ "$DRY_RUN" = 1 ] && echo 3600 || echo 660)}"
BUILD_CAP="${BUILD_TIMEOUT:-$([ "$DRY_RUN" = 1 ] && echo 3000 || echo 420)}"
START=$(date +%s)
LOG="$OUT_DIR/validate.log"
STEPS="$OUT_DIR/steps.tsv"  # name, kind, exit code, seconds, command (summarize.py reads it)
: > "$LOG"
printf 'name\tkind\trc\tseconds\tcommand\n' > "$STEPS"
status=0

log() { echo "[validate $(date -u +%H:%M:%S)] $*" | tee -a "$LOG" >&2; }
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" >> "$STEPS"; }
left() { echo $(( BUDGET - ($(date +%s) - START) )); }

# run_step NAME KIND CAP CMD...: stdout -> NAME.out, stderr -> NAME.err; the exit code and seconds go to
# steps.tsv (124: timed out, 137: killed after the grace period, "skipped": no time left). In a dry run
# GPU steps are listed and skipped.
run_step() {
  local name=$1 kind=$2 cap=$3
  shift 3
  local cmd="$*"
  if [ "$DRY_RUN" = 1 ] && [ "$kind" != build ]; then
    log "dry run: would run $name (up to ${cap} s): $cmd"
    record "$name" "$kind" dry-run 0 "$cmd"
    return 0
  fi
  local rem limit
  rem=$(left)
  limit=$(( cap < rem ? cap : rem ))
  if [ "$limit" -lt 15 ]; then
    log "$name: skipped, ${rem} s left of the ${BUDGET} s budget"
    record "$name" "$kind" skipped 0 "$cmd"
    status=1
    return 1
  fi
  log "$name (up to ${limit} s): $cmd"
  local t0 rc
  t0=$(date +%s)
  timeout -k 10 "$limit" "$@" > "$OUT_DIR/$name.out" 2> "$OUT_DIR/$name.err"
  rc=$?
  local secs=$(( $(date +%s) - t0 ))
  log "$name: exit $rc after ${secs} s$([ "$rc" = 124 ] && echo ' (timed out)')$([ "$rc" -gt 128 ] && [ "$rc" != 137 ] && echo " (signal $(( rc - 128 )))")"
  record "$name" "$kind" "$rc" "$secs" "$cmd"
  [ "$rc" -eq 0 ] || status=1
  return "$rc"
}

# ---- the toolchain --------------------------------------------------------------------------------
# nvcc: an explicit $CUDACXX first (CMake itself honours it), then PATH, then the toolkit's own folders
# (a standard install keeps nvcc off PATH), newest version first.
find_nvcc() {
  if [ -n "${CUDACXX:-}" ] && [ -x "$CUDACXX" ]; then echo "$CUDACXX"; return 0; fi
  if command -v nvcc > /dev/null 2>&1; then command -v nvcc; return 0; fi
  local c
  for c in /usr/local/cuda/bin/nvcc $(ls -d /usr/local/cuda-*/bin/nvcc 2>/dev/null | sort -V -r); do
    if [ -x "$c" ]; then echo "$c"; return 0; fi
  done
  return 1
}
NVCC=$(find_nvcc) || NVCC=""
CMAKE_VERSION=$(cmake --version 2>/dev/null | head -n 1 | sed -n 's/^cmake version \([0-9][0-9.]*\).*/\1/p')
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]; }

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
  echo "host: $(uname -a)"
  echo "cores: $(nproc 2>/dev/null || echo unknown)"
  echo "nvcc: ${NVCC:-not found}$([ -n "$NVCC" ] && echo " ($("$NVCC" --version 2>/dev/null | tail -n 1))")"
  echo "cmake: ${CMAKE_VERSION:-not found}"
  echo "dry_run: $DRY_RUN"
} > "$OUT_DIR/machine.txt"
HAVE_GPU=0
if [ "$DRY_RUN" = 0 ]; then
  if nvidia-smi > "$OUT_DIR/nvidia-smi.txt" 2>&1; then
    HAVE_GPU=1
    nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm,clocks.max.memory \
      --format=csv > "$OUT_DIR/nvidia-smi-query.csv" 2>&1 || true
  else
    log "nvidia-smi failed (no driver or no GPU): the GPU steps will fail"
  fi
fi

fail_early() {  # a step that makes every later one pointless: summary, then exit 1
  log "$1"
  write_summary
  exit 1
}
write_summary() {
  local py
  py=$(command -v python3 || command -v python || true)
  if [ -n "$py" ]; then
    "$py" bench/gpu/summarize.py "$OUT_DIR" > "$OUT_DIR/summarize.log" 2>&1 || log "summarize.py failed: see $OUT_DIR/summarize.log"
  else  # no Python: the step table alone
    { echo "# GPU validation (no Python: step table only)"; echo; echo '```'; cat "$STEPS"; echo '```'; } > "$OUT_DIR/summary.md"
  fi
  [ -s "$OUT_DIR/summary.md" ] && log "summary: $OUT_DIR/summary.md"
}

[ -n "$NVCC" ] || { record nvcc build 1 0 "find nvcc"; fail_early "no nvcc: not on PATH, not \$CUDACXX, not in /usr/local/cuda/bin or /usr/local/cuda-*/bin; install the CUDA toolkit or set CUDACXX"; }
[ -n "$CMAKE_VERSION" ] || { record cmake build 1 0 "cmake --version"; fail_early "no cmake found (pip install cmake, or apt install cmake)"; }
version_ge "$CMAKE_VERSION" 3.18 || { record cmake build 1 0 "cmake --version"; fail_early "CMake $CMAKE_VERSION is too old: hayate needs 3.18 or newer (3.25+ for 90a); pip install cmake"; }
log "nvcc: $NVCC; cmake $CMAKE_VERSION"

# ---- architectures: this GPU's only (half the compile time of the default pair) --------------------------
ARCHS_GIVEN=0
if [ -n "${HAYATE_CUDA_ARCHS:-}" ]; then
  ARCHS_GIVEN=1
else
  cap=""
  [ "$HAVE_GPU" = 1 ] && cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .')
  case "$cap" in
    90) HAYATE_CUDA_ARCHS="90a" ;;
    [0-9][0-9]|1[0-9][0-9]) HAYATE_CUDA_ARCHS="$cap" ;;
    *) HAYATE_CUDA_ARCHS="90a" ;;  # no GPU (dry run): the Hopper build the GPU runs use
  esac
fi
# "90a" (architecture-specific targets) needs CMake >= 3.25.0, the first release whose CUDA_ARCHITECTURES
# accepts the "a" suffix. The kernels use no sm_90a-only instruction, so plain 90 is a working fallback.
if printf '%s' "$HAYATE_CUDA_ARCHS" | grep -q '[0-9]a' && ! version_ge "$CMAKE_VERSION" 3.25; then
  if [ "$ARCHS_GIVEN" = 1 ]; then
    record cmake build 1 0 "cmake --version"
    fail_early "HAYATE_CUDA_ARCHS=$HAYATE_CUDA_ARCHS needs CMake >= 3.25 for the 'a' suffix; this is CMake $CMAKE_VERSION. Install a newer one (pip install cmake) or use HAYATE_CUDA_ARCHS=90"
  fi
  log "CMake $CMAKE_VERSION predates 3.25, which added the 'a' suffix (90a): building for ${HAYATE_CUDA_ARCHS//a/} instead (pip install cmake for 90a)"
  HAYATE_CUDA_ARCHS=${HAYATE_CUDA_ARCHS//a/}
fi
log "CUDA architectures: $HAYATE_CUDA_ARCHS"

# ---- 1. build ----------------------------------------------------------------------------------------
GEN=()
command -v ninja > /dev/null 2>&1 && GEN=(-G Ninja)
if [ -f "$BUILD/CMakeCache.txt" ]; then  # a build dir from another generator or checkout cannot be reused
  cached=$(sed -n 's/^CMAKE_GENERATOR:INTERNAL=//p' "$BUILD/CMakeCache.txt")
  want=$([ ${#GEN[@]} -gt 0 ] && echo Ninja || echo "Unix Makefiles")
  [ "$cached" = "$want" ] || { log "$BUILD was configured for '$cached': starting it afresh"; rm -rf "$BUILD/CMakeCache.txt" "$BUILD/CMakeFiles"; }
  source_dir=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$BUILD/CMakeCache.txt" 2>/dev/null)
  if [ -n "$source_dir" ] && [ "$source_dir" != "$ROOT" ]; then
    log "$BUILD was configured for the checkout $source_dir: starting it afresh"
    rm -rf "$BUILD/CMakeCache.txt" "$BUILD/CMakeFiles"
  fi
fi
run_step configure build 120 cmake -S . -B "$BUILD" ${GEN[@]+"${GEN[@]}"} -DCMAKE_BUILD_TYPE=Release -DHAYATE_CUDA=ON \
  "-DCMAKE_CUDA_COMPILER=$NVCC" "-DHAYATE_CUDA_ARCHS=$HAYATE_CUDA_ARCHS" "-DCMAKE_CUDA_ARCHITECTURES=$HAYATE_CUDA_ARCHS" \
  || fail_early "configure failed: see $OUT_DIR/configure.err"
run_step build build "$BUILD_CAP" cmake --build "$BUILD" -j "$JOBS" --target hayate_native_tests hayate_bench \
  || fail_early "build failed: see $OUT_DIR/build.out / build.err"
TESTS="$BUILD/hayate_native_tests"
BENCH="$BUILD/hayate_bench"

# ---- 2. op checks, one process per family ------------------------------------------------------------------
# Families from the test names cuda_op/<family>/<case>; without any such name, every test named "cuda" runs
# as one family.
"$TESTS" --list cuda_op/ > "$OUT_DIR/op_check_list.txt" 2> "$OUT_DIR/op_check_list.err" || log "hayate_native_tests --list failed"
mapfile -t FAMILIES < <(sed -n 's#^cuda_op/\([^/][^/]*\)/.*#\1#p' "$OUT_DIR/op_check_list.txt" | awk '!seen[$0]++')
if [ "${#FAMILIES[@]}" -gt 0 ]; then
  log "op-check families: ${FAMILIES[*]}"
  for f in "${FAMILIES[@]}"; do
    run_step "op_check-$f" op_check 120 "$TESTS" "cuda_op/$f/"
  done
  OTHER_TESTS=(--exclude cuda_op/)
else
  log "no test named cuda_op/<family>/...: running every test named 'cuda' as one family"
  run_step "op_check-cuda" op_check 300 "$TESTS" cuda
  OTHER_TESTS=(--exclude cuda)
fi

# ---- 3. training: LoRA forward+backward at 512 and 2048 tokens, one whole GRPO step (G = 8 x 8 prompts, 512 new
# tokens; the update in 4 micro-batches of 16 sequences, ~10k tokens each, so that activations fit an 80 GB H100)
run_step train bench 240 "$BENCH" train --shape qwen3-0.6b --backend cuda --seq-lens 512,2048 \
  --grpo-step on --prompts 8 --generations 8 --prompt-len 128 --max-new-tokens 512 --micro-batches 4
[ -s "$OUT_DIR/train.out" ] && cp "$OUT_DIR/train.out" "$OUT_DIR/train-qwen3-0.6b-cuda.json"

# ---- 4. kernel benchmark (outputs verified before timing) ---------------------------------------------------
kargs=(kernels --backend cuda --repeats 10)
[ -n "${KERNEL_OPS:-}" ] && kargs+=(--ops "$KERNEL_OPS")
[ -n "${KERNEL_SHAPES:-}" ] && kargs+=(--shapes "$KERNEL_SHAPES")
run_step kernels bench 180 "$BENCH" "${kargs[@]}"
[ -s "$OUT_DIR/kernels.out" ] && cp "$OUT_DIR/kernels.out" "$OUT_DIR/kernels-cuda.json"

# ---- 5. PyTorch on the same shapes --------------------------------------------------------------------------
PY=$(command -v python3 || command -v python || true)
if [ "${SKIP_TORCH:-0}" = 1 ]; then
  log "torch_baselines: skipped (SKIP_TORCH=1)"
elif [ -z "$PY" ]; then
  log "torch_baselines: no python3 found, skipped"
else
  if [ "$DRY_RUN" = 1 ]; then  # no GPU, maybe no torch: the script must at least compile
    pyc=(bench/gpu/torch_baselines.py bench/gpu/summarize.py)  # compiled in memory: no __pycache__ left behind
    if "$PY" -c 'import sys; [compile(open(f).read(), f, "exec") for f in sys.argv[1:]]' "${pyc[@]}" 2>> "$LOG"; then
      record python_compile build 0 0 "compile ${pyc[*]}"
    else
      record python_compile build 1 0 "compile ${pyc[*]}"
      status=1
    fi
  fi
  targs=(--repeats 10)
  [ -n "${KERNEL_SHAPES:-}" ] && targs+=(--shapes "$KERNEL_SHAPES")
  run_step torch_baselines baseline 180 "$PY" bench/gpu/torch_baselines.py "${targs[@]}"
  [ -s "$OUT_DIR/torch_baselines.out" ] && cp "$OUT_DIR/torch_baselines.out" "$OUT_DIR/torch-baselines.json"
fi

# ---- 6. the native tests that need no GPU ---------------------------------------------------------------------
if [ "$DRY_RUN" = 1 ]; then
  "$TESTS" --list "${OTHER_TESTS[@]}" > "$OUT_DIR/native_tests_list.txt" 2>&1 || true
  log "$(wc -l < "$OUT_DIR/native_tests_list.txt") native tests besides the op checks"
fi
run_step native_tests cpu_tests 120 "$TESTS" "${OTHER_TESTS[@]}"

write_summary
log "done in $(( $(date +%s) - START )) s: overall status $status; outputs in $OUT_DIR"
exit "$status"
