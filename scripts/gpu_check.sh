#!/usr/bin/env bash
# GPU readiness check (issue 16): install the CUDA extra when a GPU is present and JAX does not
# use it yet, then run scripts/gpu_check.py (tests, vmap vs lax.map, FEMNIST-style FedAvg, the
# largest logistic population, a STUNner run), all within 8 minutes, into one JSON.
#   bash scripts/gpu_check.sh [OUT.json] [--cpu-smoke]
# Default OUT: results/gpu_check_<backend>.json. Without a GPU (or with --cpu-smoke) it runs the
# tiny CPU path (< 60 s). Python: $PYTHON, else .venv/bin/python, else python3.
set -u
cd "$(dirname "$0")/.."
export DL_GPU_CHECK_T0
DL_GPU_CHECK_T0=$(date +%s.%N)
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export WANDB_MODE=disabled

smoke=0
for arg in "$@"; do [ "$arg" = "--cpu-smoke" ] && smoke=1; done

has_gpu=0
if [ "$smoke" = 0 ] && command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  has_gpu=1
fi

uses_gpu() { "$PY" -c "import jax,sys; sys.exit(0 if jax.default_backend()=='gpu' else 1)" 2>/dev/null; }

export DL_GPU_INSTALL_STATUS=skipped DL_GPU_INSTALL_REASON="" DL_GPU_INSTALL_S=0
if [ "$smoke" = 1 ]; then
  DL_GPU_INSTALL_REASON="--cpu-smoke: nothing installed"
elif [ "$has_gpu" = 0 ]; then
  DL_GPU_INSTALL_REASON="no NVIDIA GPU visible (nvidia-smi -L failed): CPU path"
elif uses_gpu; then
  DL_GPU_INSTALL_REASON="JAX already runs on the GPU"
else
  # the project's extra (pyproject: cuda = jax[cuda12]), held at the installed jax version
  jv=$("$PY" -c "import jax; print(jax.__version__)")
  t0=$(date +%s)
  log=$(mktemp)
  if timeout 150 "$PY" -m pip install -q -e '.[cuda]' "jax[cuda12]==$jv" >"$log" 2>&1 && uses_gpu; then
    DL_GPU_INSTALL_STATUS=ok
    DL_GPU_INSTALL_REASON="pip install -e '.[cuda]' jax[cuda12]==$jv"
  else
    DL_GPU_INSTALL_STATUS=failed
    DL_GPU_INSTALL_REASON="pip install -e '.[cuda]' jax[cuda12]==$jv: $(grep -E 'ERROR|error' "$log" | tail -1 | cut -c1-300)"
  fi
  DL_GPU_INSTALL_S=$(( $(date +%s) - t0 ))
fi

exec "$PY" scripts/gpu_check.py "$@"
