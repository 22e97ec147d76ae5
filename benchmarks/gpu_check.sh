#!/usr/bin/env bash
# One-command GPU check: install, CUDA tests, a short FP-NAS-S1 search on real JPEG files, and the
# step-overhead / memory / throughput / latency-table benchmarks with their CUDA rows, in at most ~9 minutes on one GPU.
#
#   bash benchmarks/gpu_check.sh                 # on a machine with a GPU; reports in benchmarks/results/*_cuda.*
#   bash benchmarks/gpu_check.sh --cpu           # the same steps on the CPU at tiny sizes (CI; reports in a temp dir)
#   bash benchmarks/gpu_check.sh --fetch-wheels wheels   # where PyPI is reachable: the wheels to carry along
#
# A GPU machine without a package registry: bring `wheels/` (hydra-core, omegaconf,
# antlr4-python3-runtime, mlxtend, fetched with --fetch-wheels) with the working tree; they are
# installed with --no-index --no-deps, then the project with --no-deps --no-build-isolation (torch,
# Lightning, timm, torchmetrics, ... must already be there). Where everything imports already
# (a venv made with the README's commands), nothing is installed.
# Options: --cpu, --wheels DIR (default: wheels), --python PY (default: .venv/bin/python if present,
# else python3), --fetch-wheels DIR. Every step's output goes to <results>/gpu_check<suffix>.log and
# a step table with times to <results>/gpu_check<suffix>.md; the script exits non-zero if a step failed.
set -uo pipefail
cd "$(dirname "$0")/.."

MODE=gpu
WHEELS=wheels
PY=""
FETCH=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) MODE=cpu ;;
    --wheels) WHEELS="$2"; shift ;;
    --python) PY="$2"; shift ;;
    --fetch-wheels) FETCH="$2"; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "error: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi

if [ -n "$FETCH" ]; then  # pure-Python wheels the GPU image lacks; pip wheel also builds antlr's (sdist only)
  mkdir -p "$FETCH"
  exec "$PY" -m pip wheel --no-deps -w "$FETCH" \
    "hydra-core>=1.3.2,<1.4" "omegaconf>=2.3,<2.4" "antlr4-python3-runtime==4.9.3" "mlxtend>=0.23"
fi

if [ "$MODE" = gpu ]; then
  SUFFIX=_cuda
  RESULTS=benchmarks/results
  export FPNAS_BENCH_RESULTS=""
  BENCH=(--devices cuda --cases cuda --suffix _cuda)
  LATENCY=(--devices cuda --cases tiny --suffix _cuda)
  CLASSES=100; PER_CLASS=16; PIXELS=160
  SEARCH=(trainer.accelerator=gpu trainer.precision=bf16-mixed space.input_size=128 data.batch_size=64
          data.num_workers=4 +trainer.limit_train_batches=12 +trainer.limit_val_batches=2)
  TESTS=(env)
else
  SUFFIX=_cpu_check
  RESULTS=$(mktemp -d)/results  # the committed reports stay as they are
  export FPNAS_BENCH_RESULTS="$RESULTS"
  BENCH=(--devices cpu --quick --suffix _cpu_check)
  LATENCY=(--devices cpu --quick --suffix _cpu_check)
  CLASSES=4; PER_CLASS=8; PIXELS=40
  # K = 2 (λ = 0.02: the experiment's λ = 0.25 gives K = 24 on this 96-nat space) and float32 (CPUs
  # without bf16 units emulate it)
  SEARCH=(trainer.accelerator=cpu space.input_size=32 data.batch_size=8 sampler.lam=0.02
          data.num_workers=0 +trainer.limit_train_batches=2 +trainer.limit_val_batches=1)
  TESTS=(env FPNAS_TEST_DEVICE=cpu)
fi
mkdir -p "$RESULTS"
LOG="$RESULTS/gpu_check$SUFFIX.log"
MD="$RESULTS/gpu_check$SUFFIX.md"
WORK=$(mktemp -d)
: > "$LOG"
ROWS=()
FAILED=0

step() {  # step NAME COMMAND...: run, log, time; keep going after a failure
  local name="$1"; shift
  local start=$SECONDS
  echo "== $name: $*" | tee -a "$LOG"
  if "$@" >> "$LOG" 2>&1; then status=ok; else status="FAILED ($?)"; FAILED=1; fi
  local took=$((SECONDS - start))
  echo "   $status in ${took}s" | tee -a "$LOG"
  ROWS+=("| $name | $status | $took |")
}

install() {
  if "$PY" -c "import hydra, omegaconf, mlxtend, fpnas" 2>/dev/null; then
    echo "everything imports: nothing to install"
    return 0
  fi
  if ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    echo "error: hydra/omegaconf/mlxtend are missing and '$WHEELS' holds no wheels: bring them" \
         "(bash benchmarks/gpu_check.sh --fetch-wheels $WHEELS where PyPI is reachable)"
    return 1
  fi
  "$PY" -m pip install --no-index --no-deps "$WHEELS"/*.whl || return 1
  if ! "$PY" -m pip install --no-deps --no-build-isolation -e .; then
    # e.g. a setuptools older than pyproject's: the entry points and tests import fpnas from the root
    echo "editable install failed: using PYTHONPATH=$PWD instead"
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  fi
  "$PY" -c "import hydra, omegaconf, mlxtend, fpnas; print('fpnas imports from', fpnas.__file__)"
}

environment() {
  "$PY" - <<'EOF'
import torch, pytorch_lightning as pl, timm
print("torch", torch.__version__, "| lightning", pl.__version__, "| timm", timm.__version__)
print("cuda available:", torch.cuda.is_available(), "| devices:", torch.cuda.device_count())
for i in range(torch.cuda.device_count()):
    print(" ", i, torch.cuda.get_device_name(i), f"{torch.cuda.get_device_properties(i).total_memory / 2**30:.0f} GiB")
EOF
}

image_folder() {  # real JPEG files in the ImageNet layout: root/{train,val}/<class>/*.jpg
  "$PY" - "$WORK/images" "$CLASSES" "$PER_CLASS" "$PIXELS" <<'EOF'
import sys
from pathlib import Path
import numpy as np
from PIL import Image
root, classes, per_class, px = Path(sys.argv[1]), *map(int, sys.argv[2:])
rng = np.random.default_rng(0)
for split, n in (("train", per_class), ("val", max(2, per_class // 4))):
    for c in range(classes):
        folder = root / split / f"n{c:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 256, 3)  # a class colour, so that the task is learnable
        for i in range(n):
            pixels = np.clip(base + rng.normal(0, 40, (px, px, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:04d}.jpg", quality=90)
print(f"{classes} classes x {per_class} train images at {px} px under {root}")
EOF
}

search() {
  "$PY" search.py experiment=fpnas_s1 data.root="$WORK/images" data.num_classes_subset=null \
    "${SEARCH[@]}" trainer.max_epochs=2 search.warmup_epochs=1 distribution.switch_epoch=1 \
    trainer.enable_progress_bar=false hydra.run.dir="$WORK/search" &&
    cp "$WORK/search/search_summary.json" "$RESULTS/gpu_check_search$SUFFIX.json" &&
    cp "$WORK/search/arch.yaml" "$RESULTS/gpu_check_arch$SUFFIX.yaml"
}

step environment environment
step install install
step "pytest -m cuda" "${TESTS[@]}" "$PY" -m pytest -m cuda -q -p no:cacheprovider tests/test_cuda.py
step "image folder" image_folder
step "search.py experiment=fpnas_s1" search
step "step overhead" "$PY" benchmarks/step_overhead.py "${BENCH[@]}"
step memory "$PY" benchmarks/memory.py "${BENCH[@]}"
step throughput "$PY" benchmarks/throughput.py "${BENCH[@]}"
step "latency table" "$PY" benchmarks/latency_lut.py "${LATENCY[@]}"

{
  echo "# gpu_check ($MODE) $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "| step | status | seconds |"
  echo "|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "Total ${SECONDS} s. Log: gpu_check$SUFFIX.log; reports: *$SUFFIX.json|md beside it."
} > "$MD"
cat "$MD"
rm -rf "$WORK"
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then cp -r "$RESULTS"/. "$OUT"/; fi  # the device tool brings $OUT back
exit $FAILED
