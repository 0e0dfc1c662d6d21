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
# PyTorch's CPU build, from PyTorch's own CPU index where it answers: PyPI's torch for Linux x86_64
# is the CUDA build (gigabytes with its nvidia-* wheels). Elsewhere the pin comes from pip's own
# index (a local CPU wheel, where a machine provides one, is taken; the check below says which).
torch_pin=$(grep -E '^torch==' "$here/requirements/ci.txt")
cpu_index=${ASL_EDGE_TORCH_INDEX-https://download.pytorch.org/whl/cpu}
if [[ -n $cpu_index ]] && "$venv/bin/python" -c 'import sys, urllib.request
urllib.request.urlopen(sys.argv[1].rstrip("/") + "/torch/", timeout=10)' "$cpu_index" 2> /dev/null; then
    echo "bootstrap: $torch_pin from PyTorch's CPU index ($cpu_index)"
    "$venv/bin/python" -m pip install -q --no-deps --index-url "$cpu_index" "$torch_pin"
else
    echo "bootstrap: PyTorch's CPU index (${cpu_index:-none: ASL_EDGE_TORCH_INDEX is empty}) does not" \
        "answer; $torch_pin comes from pip's configured index"
fi
# Everything pinned (requirements/ci.txt); a torch installed above already satisfies its pin.
"$venv/bin/python" -m pip install -q -r "$here/requirements/ci.txt"
"$venv/bin/python" -c 'import torch, sys
cuda = torch.version.cuda
print(f"bootstrap: torch {torch.__version__}: " + (f"a CUDA {cuda} build: set ASL_EDGE_TORCH_INDEX to a "
      "reachable copy of https://download.pytorch.org/whl/cpu for the CPU one" if cuda else "the CPU build"))'
"$venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$here"
# TensorRT 10 type stubs for the static API check (tests/test_trt_api.py), kept outside
# site-packages: installed there, their 'tensorrt' folder would look like an importable TensorRT.
"$venv/bin/python" -m pip install -q --no-deps --upgrade --target "$venv/trt-stubs" "tensorrt-stubs==$TRT_STUBS_VERSION"
echo "$fingerprint" > "$stamp"
