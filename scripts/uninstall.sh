#!/usr/bin/env bash
# Removes what scripts/install.sh installed: stops and disables the service, removes the kiosk from
# Home Assistant when its discovery is enabled, removes the unit and /opt/asl-edge (the virtualenv).
# The config and credentials (/etc/asl-edge) and the predictions and feedback (/var/lib/asl-edge)
# stay unless --purge is given; the asl-edge user stays too (files may still belong to it).
#
# Usage: sudo scripts/uninstall.sh [--purge] [--no-systemd]
# Environment: ASL_EDGE_ROOT, as for scripts/install.sh.
set -euo pipefail
root=${ASL_EDGE_ROOT:-}
root=${root%/}
unit=asl-edge.service
screen_unit=asl-edge-screen.service

purge=0 use_systemd=1
for arg in "$@"; do
    case $arg in
        --purge) purge=1 ;;
        --no-systemd) use_systemd=0 ;;
        -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "uninstall: unknown option '$arg' (see --help)" >&2; exit 2 ;;
    esac
done
if [[ -z $root && $(id -u) -ne 0 ]]; then
    echo "uninstall: run as root (sudo $0), or set ASL_EDGE_ROOT" >&2
    exit 2
fi
step() { echo "uninstall: $*"; }

for name in "$screen_unit" "$unit"; do
    if ((use_systemd)) && [[ -e $root/etc/systemd/system/$name ]]; then
        if [[ -z $root && -d /run/systemd/system ]]; then
            systemctl disable --now "$name"
        else
            systemctl --root="${root:-/}" disable "$name"
        fi
    fi
    rm -f "$root/etc/systemd/system/$name" "$root"/etc/systemd/system/*.wants/"$name"
done
rm -f "$root/etc/xdg/autostart/asl-edge-screen.desktop"
if ((use_systemd)) && [[ -z $root && -d /run/systemd/system ]]; then
    systemctl daemon-reload
fi
# A kiosk that announced itself to Home Assistant ([homeassistant] enabled) leaves it too, now
# that the service is stopped and cannot announce itself again.
asl_edge=$root/opt/asl-edge/venv/bin/asl-edge
if [[ -x $asl_edge && -f $root/etc/asl-edge/config.toml ]]; then
    CREDENTIALS_DIRECTORY=$root/etc/asl-edge/credentials "$asl_edge" homeassistant remove --if-enabled \
        --config "$root/etc/asl-edge/config.toml" \
        || step "the kiosk is still in Home Assistant: delete its device there (MQTT integration)"
fi
rm -rf "$root/opt/asl-edge"
step "removed $unit and /opt/asl-edge"

data=("$root/etc/asl-edge" "$root/var/lib/asl-edge" "$root/var/cache/asl-edge" "$root/var/lib/asl-edge-screen")
if ((purge)); then
    for path in "${data[@]}"; do
        [[ -e $path ]] || continue
        step "deleting $path ($(du -sh "$path" | cut -f1))"
        rm -rf "$path"
    done
    rm -f "$root/etc/sysusers.d/asl-edge.conf" "$root/etc/sysusers.d/asl-edge-screen.conf"
else
    for path in "${data[@]::2}"; do
        if [[ -e $path ]]; then
            step "kept $path ($(du -sh "$path" | cut -f1))"
        fi
    done
    step "config, credentials, predictions and feedback are kept; --purge deletes them"
fi
