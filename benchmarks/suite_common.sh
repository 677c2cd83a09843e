# Shared by the prepared GPU scripts (gpu_suite/gpu_suite.sh, fmnist_study/gpu.sh); sourced, not run.
# Each script keeps its own help text (its leading comment block, printed by --help).

# suite_parse_args NAME SMOKE_DEFAULT ARGS... : sets SMOKE (1 for --cpu-smoke, else SMOKE_DEFAULT) and
# PY ($PYTHON or python), prints the caller's help for -h/--help, refuses anything else (exit 2,
# naming the valid flags).
suite_parse_args() {
  local name="$1" arg
  SMOKE="$2"
  PY="${PYTHON:-python}"
  shift 2
  for arg in "$@"; do
    case "$arg" in
      --cpu-smoke) SMOKE=1 ;;
      -h|--help) sed -n '2,/^set /p' "$0" | grep '^#'; exit 0 ;;
      *) echo "$name: unknown argument '$arg' (valid: --cpu-smoke, --help)" >&2; exit 2 ;;
    esac
  done
}

# suite_require_gpu NAME SMOKE_VAR : unless SMOKE=1, exits 2 when torch sees no GPU (before the caller
# touches its results folder), naming the flag and the environment variable SMOKE_VAR that run it shrunk.
suite_require_gpu() {
  if [ "$SMOKE" != 1 ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "$1: torch sees no GPU here; run with --cpu-smoke (or $2=1) on a CPU" >&2
    exit 2
  fi
}

# suite_require NAME WHEELS_VAR "PIP NAMES" MODULES... : with the environment variable WHEELS_VAR set
# to a folder of wheels (a machine without network), installs PIP NAMES from it; then exits 2 naming
# every Python module of MODULES that $PY cannot import.
suite_require() {
  local name="$1" wheels_var="$2" pip_names="$3" missing
  shift 3
  if [ -n "${!wheels_var:-}" ]; then
    # shellcheck disable=SC2086  # the pip names are one word each
    "$PY" -m pip install -q --no-index --find-links "${!wheels_var}" $pip_names
  fi
  missing="$("$PY" -c 'import importlib.util, sys; print(" ".join(n for n in sys.argv[1:] if importlib.util.find_spec(n) is None))' "$@")"
  if [ -n "$missing" ]; then
    echo "$name: missing Python packages: $missing - install them (pip install -e .), or carry wheels" \
         "(pip download $pip_names -d wheels) and set $wheels_var=wheels" >&2
    exit 2
  fi
}
