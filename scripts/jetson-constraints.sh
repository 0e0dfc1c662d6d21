#!/usr/bin/env bash
# Writes requirements/jetson.txt: the exact versions pip resolves today for a Jetson on JetPack 6
# (CPython 3.10, aarch64, glibc 2.35), for the runtime requirements of setup.py (install_requires,
# markers evaluated for Python 3.10) plus numpy<2, which JetPack's TensorRT Python bindings were
# built against, and pycuda (the jetson extra; only an sdist, built on the device) with its
# dependencies. Run it on any machine that reaches the package index; scripts/install.sh and
# Dockerfile.jetson install with this file as pip's constraints, and tests/test_jetson.py checks
# that it still resolves for that platform.
#
# Usage: scripts/jetson-constraints.sh [OUTPUT]      (default: requirements/jetson.txt)
# Environment: PYTHON (the pip that resolves; default .venv/bin/python, else python3),
#              PYCUDA_VERSION (default: the newest on the index)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/requirements/jetson.txt}
python=${PYTHON:-}
if [[ -z $python ]]; then
    python=python3
    [[ -x $here/.venv/bin/python ]] && python=$here/.venv/bin/python
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The platform flags also appear in tests/test_jetson.py; keep the two lists alike.
platform=(--only-binary=:all: --python-version 3.10 --implementation cp --abi cp310
    --platform manylinux_2_35_aarch64 --platform manylinux_2_28_aarch64
    --platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64)

mapfile -t runtime < <("$python" "$here/scripts/runtime_requirements.py" "$here/setup.py")

pycuda=${PYCUDA_VERSION:-}
if [[ -z $pycuda ]]; then
    pycuda=$("$python" -m pip index versions pycuda 2> /dev/null | sed -n 's/^pycuda (\(.*\))$/\1/p')
fi
[[ -n $pycuda ]] || { echo "jetson-constraints: cannot find pycuda on the index" >&2; exit 1; }
"$python" -m pip download -q --no-deps --no-binary=:all: --no-build-isolation -d "$work/sdist" \
    "pycuda==$pycuda" 2> /dev/null
mapfile -t pycuda_needs < <(tar -xzOf "$work"/sdist/pycuda-*.tar.gz --wildcards '*/PKG-INFO' |
    sed -n 's/^Requires-Dist: \([^;]*\)$/\1/p')

"$python" -m pip install -q --dry-run --ignore-installed "${platform[@]}" --target "$work/target" \
    --report "$work/report.json" "numpy<2" "${runtime[@]}" "${pycuda_needs[@]}" 2> /dev/null

pip_version=$("$python" -m pip --version | cut -d' ' -f2)
{
    echo "# Constraints for a Jetson on JetPack 6 (CPython 3.10, aarch64, glibc 2.35): what pip $pip_version"
    echo "# resolved for asl-edge's runtime requirements, numpy<2 (JetPack's TensorRT bindings are"
    echo "# built against NumPy 1.x) and pycuda's dependencies. Written by scripts/jetson-constraints.sh;"
    echo "# rerun it to move the pins, do not edit by hand."
    "$python" -c '
import json, sys
report = json.load(open(sys.argv[1]))
pins = {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in report["install"]}
pins["pycuda"] = sys.argv[2]
for name in sorted(pins):
    print(f"{name}=={pins[name]}")
' "$work/report.json" "$pycuda"
} > "$out.tmp"
mv "$out.tmp" "$out"
echo "jetson-constraints: wrote $out ($(grep -c '==' "$out") pins)"
