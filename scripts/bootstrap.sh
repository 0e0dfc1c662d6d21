#!/usr/bin/env bash
# Sets up a fresh Debian/Ubuntu machine for asl-edge: missing apt packages (only those not yet
# installed, so a ready machine needs no root), then a virtualenv with the pinned requirements.
# Usage: scripts/bootstrap.sh VENV_DIR
set -euo pipefail
venv=${1:-.venv}
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
TRT_STUBS_VERSION=10.13.0.35.1

missing=()
while read -r package; do
    [[ -z "$package" || "$package" == \#* ]] && continue
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done < "$here/requirements/apt.txt"
if ! "$python" -c "import venv, ensurepip" 2>/dev/null; then
    missing+=(python3-venv)
fi
if ((${#missing[@]})); then
    echo "bootstrap: installing apt packages: ${missing[*]}"
    sudo_cmd=()
    [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Reinstall when the pins, setup.py or the set of top-level packages changed (an editable install
# only maps the packages that existed when it was made).
stamp="$venv/.asl-edge-installed"
fingerprint=$(cd "$here" && cat requirements/ci.txt setup.py scripts/bootstrap.sh && ls -d -- */__init__.py)
fingerprint=$(printf '%s' "$fingerprint" | sha256sum | cut -d' ' -f1)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$fingerprint" ]]; then
    exit 0
fi
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || {
    echo "bootstrap: $python is older than Python 3.10" >&2; exit 1; }
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
# Everything pinned; torch to its CPU build (an unpinned torch would pull a multi-GB CUDA build).
"$venv/bin/python" -m pip install -q -r "$here/requirements/ci.txt"
"$venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$here"
# TensorRT 10 type stubs for the static API check (tests/test_trt_api.py), kept outside
# site-packages: installed there, their 'tensorrt' folder would look like an importable TensorRT.
"$venv/bin/python" -m pip install -q --no-deps --upgrade --target "$venv/trt-stubs" "tensorrt-stubs==$TRT_STUBS_VERSION"
echo "$fingerprint" > "$stamp"
