#!/usr/bin/env bash
# Installs asl-edge as a systemd service on a Jetson (JetPack 6) or any Debian/Ubuntu machine:
# the apt packages of requirements/jetson-apt.txt, the asl-edge system user (group video), a
# virtualenv at /opt/asl-edge/venv that sees the system's TensorRT and GStreamer bindings, the unit,
# a config at /etc/asl-edge/config.toml (an existing one is kept), empty credential files, and then
# enables and (re)starts the service. Run it again to upgrade.
#
# Usage: sudo scripts/install.sh [--no-apt] [--no-user] [--no-systemd] [--no-doctor]
#                                [--print-apt-packages] [--screen] [--screen-desktop]
#   --no-doctor       skip the last step, 'asl-edge doctor' on the installed config (it tries
#                     the camera, model, broker, S3, channel, disk and clock; a failure is the
#                     install's exit status 1, after everything is in place)
#   --screen          also the kiosk screen without a desktop: asl-edge-screen.service runs
#                     Chromium in kiosk mode inside cage on tty1 (apt: cage; user asl-edge-screen)
#   --screen-desktop  also the kiosk screen in a desktop session: an autostart entry
#                     (/etc/xdg/autostart/asl-edge-screen.desktop) for whoever logs in
#   Either needs a Chromium: apt install chromium (Debian) or snap install chromium (Ubuntu).
# Environment:
#   ASL_EDGE_ROOT      install under this directory instead of / (a staging root, e.g. for tests);
#                      the virtualenv only runs from the path it was created at
#   ASL_EDGE_PYTHON    interpreter for the virtualenv (default python3)
#   ASL_EDGE_EXTRAS    pip extras, e.g. jetson (default: jetson where /etc/nv_tegra_release exists or
#                      tensorrt imports, else none)
#   ASL_EDGE_PACKAGE   what pip installs (default: this source tree; a built wheel works too)
#   ASL_EDGE_PIP_ARGS  extra arguments for pip install (e.g. --no-deps offline)
#   ASL_EDGE_CONSTRAINTS  pip constraints file (default: requirements/jetson.txt with the jetson
#                      extra, else none; empty: none)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
root=${ASL_EDGE_ROOT:-}
root=${root%/}
python=${ASL_EDGE_PYTHON:-python3}
package=${ASL_EDGE_PACKAGE:-$here}
read -r -a pip_args <<< "${ASL_EDGE_PIP_ARGS:-}"
venv=/opt/asl-edge/venv
unit=asl-edge.service
screen_unit=asl-edge-screen.service

apt_packages() {
    sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$here/requirements/jetson-apt.txt"
}

use_apt=1 use_user=1 use_systemd=1 use_doctor=1 use_screen=0 use_screen_desktop=0
for arg in "$@"; do
    case $arg in
        --no-apt) use_apt=0 ;;
        --no-user) use_user=0 ;;
        --no-systemd) use_systemd=0 ;;
        --no-doctor) use_doctor=0 ;;
        --screen) use_screen=1 ;;
        --screen-desktop) use_screen_desktop=1 ;;
        --print-apt-packages) apt_packages; exit 0 ;;
        -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "install: unknown option '$arg' (see --help)" >&2; exit 2 ;;
    esac
done
if [[ -z $root && $(id -u) -ne 0 ]]; then
    echo "install: run as root (sudo $0), or set ASL_EDGE_ROOT to stage into a directory" >&2
    exit 2
fi
step() { echo "install: $*"; }

if ((use_apt)); then
    mapfile -t packages < <(apt_packages)
    ((use_screen)) && packages+=(cage)
    step "apt packages: ${packages[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
fi

if ((use_user)); then
    install -D -m 0644 "$here/systemd/asl-edge.sysusers" "$root/etc/sysusers.d/asl-edge.conf"
    step "system user asl-edge (group video)"
    systemd-sysusers --root="${root:-/}" "$root/etc/sysusers.d/asl-edge.conf"
    if ((use_screen)); then
        install -D -m 0644 "$here/systemd/asl-edge-screen.sysusers" "$root/etc/sysusers.d/asl-edge-screen.conf"
        step "system user asl-edge-screen (the kiosk screen)"
        systemd-sysusers --root="${root:-/}" "$root/etc/sysusers.d/asl-edge-screen.conf"
    fi
fi

# --system-site-packages: JetPack's tensorrt and the system's gi (GStreamer) are apt packages.
if [[ ! -x $root$venv/bin/python ]]; then
    step "virtualenv $root$venv"
    "$python" -m venv --system-site-packages "$root$venv"
fi
extras=${ASL_EDGE_EXTRAS-auto}
if [[ $extras == auto ]]; then
    extras=""
    if [[ -f /etc/nv_tegra_release ]] || "$root$venv/bin/python" -c "import tensorrt" 2> /dev/null; then
        extras=jetson
    fi
fi
# pycuda (the jetson extra) compiles against the device's CUDA; it links libcuda through the
# toolkit's stub, and the driver's libcuda.so.1 is found at run time.
if [[ $extras == *jetson* && -d /usr/local/cuda ]]; then
    export CUDA_ROOT=/usr/local/cuda PATH="/usr/local/cuda/bin:$PATH"
    export LIBRARY_PATH="/usr/local/cuda/lib64/stubs${LIBRARY_PATH:+:$LIBRARY_PATH}"
fi
# On a Jetson every package is pinned to what scripts/jetson-constraints.sh resolved for JetPack 6
# (CPython 3.10, aarch64), NumPy 1.x among them: JetPack's TensorRT bindings were built against it.
constraints=${ASL_EDGE_CONSTRAINTS-auto}
if [[ $constraints == auto ]]; then
    constraints=""
    [[ $extras == *jetson* ]] && constraints=$here/requirements/jetson.txt
fi
extras=${extras:+[$extras]}
step "asl-edge$extras into $root$venv${constraints:+ (constraints: $constraints)}"
"$root$venv/bin/python" -m pip install -q --upgrade "${pip_args[@]}" ${constraints:+--constraint "$constraints"} \
    "$package$extras"

install -D -m 0644 "$here/systemd/$unit" "$root/etc/systemd/system/$unit"
units=("$unit")
if ((use_screen)); then
    install -D -m 0644 "$here/systemd/$screen_unit" "$root/etc/systemd/system/$screen_unit"
    units+=("$screen_unit")
    step "$screen_unit: Chromium in kiosk mode inside cage on tty1"
fi
if ((use_screen_desktop)); then
    install -D -m 0644 "$here/systemd/asl-edge-screen.desktop" "$root/etc/xdg/autostart/asl-edge-screen.desktop"
    step "autostart entry $root/etc/xdg/autostart/asl-edge-screen.desktop (at the next desktop login)"
fi
install -D -m 0644 "$here/README.md" "$root/opt/asl-edge/README.md"
install -d -m 0755 "$root/etc/asl-edge"
if [[ -e $root/etc/asl-edge/config.toml ]]; then
    step "kept the existing $root/etc/asl-edge/config.toml"
else
    install -m 0644 "$here/config.kiosk.toml" "$root/etc/asl-edge/config.toml"
    step "config $root/etc/asl-edge/config.toml (edit [device] id and [source] uri)"
fi
# The units load these files as credentials; systemd refuses to start one when a file is missing.
install -d -m 0700 "$root/etc/asl-edge/credentials"
for credential in mqtt-password s3-credentials screen-token; do
    [[ -e $root/etc/asl-edge/credentials/$credential ]] ||
        install -m 0600 /dev/null "$root/etc/asl-edge/credentials/$credential"
done

# What the service will meet, tried before it starts (the camera is free, and a broken part is
# named now rather than in the journal): the installed config, with the service's credentials.
doctor_failed=0
if ((use_doctor)) && [[ -z $root ]]; then
    step "asl-edge doctor --config /etc/asl-edge/config.toml"
    [[ -d /run/systemd/system ]] && systemctl stop asl-edge.service 2> /dev/null || true
    "$venv/bin/asl-edge" doctor --config /etc/asl-edge/config.toml --credentials /etc/asl-edge/credentials ||
        doctor_failed=1
elif ((use_doctor)); then
    step "skipped asl-edge doctor (a staging root: run it on the device)"
fi

if ((!use_systemd)); then
    step "skipped systemctl (--no-systemd); enable with: systemctl enable --now ${units[*]}"
elif [[ -z $root && -d /run/systemd/system ]]; then
    systemctl daemon-reload
    systemctl enable "${units[@]}"
    systemctl restart "${units[@]}"
    step "${units[*]} enabled and started; follow it with: journalctl -u asl-edge -f"
else
    systemctl --root="${root:-/}" enable "${units[@]}"
    step "systemd is not running here (a container or a staging root): ${units[*]} enabled for the" \
        "next boot, not started"
fi
if ((doctor_failed)); then
    echo "install: installed, but doctor found a problem above: fix it, then run" \
        "asl-edge doctor --config /etc/asl-edge/config.toml" >&2
    exit 1
fi
