#!/usr/bin/env bash
# Everything this project has never measured on an accelerator, in one JSON report (issue 12):
#   bash scripts/accelerator_check.sh [--out FILE] [--tiny] [--sections a,b] [--workdir DIR]
# Runs from the repository root wherever it is called from; relative paths are the caller's.
# Such a machine has no internet: wheels brought in the checkout's .whl/ (the check names them
# when a package is missing) are installed into a temporary folder first.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"

absolute() { if [[ "$1" = /* ]]; then echo "$1"; else echo "$PWD/$1"; fi; }
out="$(absolute accelerator_check.json)"
args=()
while (($#)); do
  case "$1" in
    --out) out="$(absolute "${2:-}")"; shift ;;
    --out=*) out="$(absolute "${1#*=}")" ;;
    --workdir) args+=("$1" "$(absolute "${2:-}")"); shift ;;
    --workdir=*) args+=(--workdir "$(absolute "${1#*=}")") ;;
    *) args+=("$1") ;;
  esac
  shift
done

cd "$root" || exit 2
if compgen -G ".whl/*.whl" >/dev/null; then
  site="$(mktemp -d)/site"
  "$python" -m pip install -q --no-index --no-deps --no-compile --target "$site" .whl/*.whl \
    || exit 2
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi

PYTHONUNBUFFERED=1 "$python" scripts/accelerator_check.py ${args[@]+"${args[@]}"} --out "$out"
rc=$?
if [[ -f "$out" ]]; then echo "accelerator check: exit $rc; report $out"
else echo "accelerator check: exit $rc; no report written"; fi
exit $rc
