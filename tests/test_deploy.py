"""Deployment: the systemd unit, the install and uninstall scripts, and Dockerfile.jetson.

The install script runs for real into a staging root (ASL_EDGE_ROOT): user creation with
systemd-sysusers, the virtualenv, the unit, its enablement and the config all land there, and
systemd-analyze verifies the installed unit against that tree.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from asl_edge.cli import build_parser
from edge.core.config import DEFAULT_CONFIG_PATH, read_config

ROOT = Path(__file__).resolve().parent.parent
UNITS = sorted((ROOT / "systemd").glob("*.service"))
UNIT = ROOT / "systemd" / "asl-edge.service"
VENV = "/opt/asl-edge/venv"
BIN = Path(sys.executable).parent


def _run(*command: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **(env or {})},
    )


def _settings(unit: Path) -> list[tuple[str, str]]:
    """(key, value) of every assignment in a unit file, in order (keys may repeat)."""
    pairs = []
    for line in unit.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            pairs.append((key.strip(), value.strip()))
    return pairs


def _values(unit: Path, key: str) -> list[str]:
    return [value for name, value in _settings(unit) if name == key]


def _install(root: Path, wheel: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return _run(
        ROOT / "scripts" / "install.sh",
        "--no-apt",
        *flags,
        env={
            "ASL_EDGE_ROOT": str(root),
            "ASL_EDGE_PYTHON": sys.executable,
            "ASL_EDGE_PACKAGE": str(wheel),
            "ASL_EDGE_PIP_ARGS": "--no-deps --no-index",
        },
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This source tree as a wheel, so the install runs offline."""
    out = tmp_path_factory.mktemp("wheel")
    result = _run(
        sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", out, "."
    )
    assert result.returncode == 0, result.stderr
    return next(out.glob("asl_edge-*.whl"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    root = tmp_path_factory.mktemp("root")
    result = _install(root, wheel)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "systemd is not running here" in result.stdout
    return root


def _units_for(root: Path, folder: Path) -> list[Path]:
    """Copies of the units whose /opt/asl-edge paths point into the staging root, so that
    systemd-analyze finds the installed binaries; nothing else changes."""
    copies = []
    for unit in UNITS:
        copy = folder / unit.name
        copy.write_text(unit.read_text(encoding="utf-8").replace("/opt/asl-edge/", f"{root}/opt/asl-edge/"))
        copies.append(copy)
    return copies


@pytest.mark.slow
def test_install_creates_the_tree(installed: Path):
    asl_edge = installed / VENV.lstrip("/") / "bin" / "asl-edge"
    assert os.access(asl_edge, os.X_OK)
    assert "from asl_edge.cli import main" in asl_edge.read_text(encoding="utf-8")
    assert (installed / "etc/systemd/system/asl-edge.service").read_bytes() == UNIT.read_bytes()
    wanted = installed / "etc/systemd/system/multi-user.target.wants/asl-edge.service"
    assert os.readlink(wanted) == "/etc/systemd/system/asl-edge.service"
    config = installed / "etc/asl-edge/config.toml"
    assert config.read_bytes() == (ROOT / "config.kiosk.toml").read_bytes()

    credentials = installed / "etc/asl-edge/credentials"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o700
    for name in ("mqtt-password", "s3-credentials", "screen-token"):
        assert stat.S_IMODE((credentials / name).stat().st_mode) == 0o600
        assert (credentials / name).read_bytes() == b""

    passwd = {
        line.split(":")[0]: line.split(":") for line in (installed / "etc/passwd").read_text().splitlines()
    }
    assert passwd["asl-edge"][5] == "/var/lib/asl-edge"
    assert passwd["asl-edge"][6] == "/usr/sbin/nologin"
    groups = {
        line.split(":")[0]: line.split(":")[3].split(",")
        for line in (installed / "etc/group").read_text().splitlines()
    }
    assert "asl-edge" in groups["video"]


@pytest.mark.slow
def test_reinstall_keeps_the_config_and_credentials(installed: Path, wheel: Path, tmp_path: Path):
    root = tmp_path / "root"
    shutil.copytree(installed, root, symlinks=True)
    config = root / "etc/asl-edge/config.toml"
    config.write_text('[device]\nid = "kiosk-7"\n', encoding="utf-8")
    (root / "etc/asl-edge/credentials/mqtt-password").write_text("s3cret\n", encoding="utf-8")
    result = _install(root, wheel, "--no-user", "--no-systemd")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "kept the existing" in result.stdout
    assert config.read_text(encoding="utf-8") == '[device]\nid = "kiosk-7"\n'
    assert (root / "etc/asl-edge/credentials/mqtt-password").read_text(encoding="utf-8") == "s3cret\n"


@pytest.mark.slow
def test_uninstall_keeps_data_unless_purged(installed: Path, tmp_path: Path):
    root = tmp_path / "root"
    shutil.copytree(installed, root, symlinks=True)
    database = root / "var/lib/asl-edge/asl-edge.db"
    database.parent.mkdir(parents=True)
    database.write_bytes(b"feedback")
    env = {"ASL_EDGE_ROOT": str(root)}

    result = _run(ROOT / "scripts" / "uninstall.sh", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (root / "opt/asl-edge").exists()
    assert not (root / "etc/systemd/system/asl-edge.service").exists()
    assert not (root / "etc/systemd/system/multi-user.target.wants/asl-edge.service").is_symlink()
    assert database.read_bytes() == b"feedback"
    assert (root / "etc/asl-edge/config.toml").is_file()
    assert f"kept {root}/var/lib/asl-edge" in result.stdout
    # The installed command ran before its virtualenv went: the kiosk config leaves discovery off.
    assert "Home Assistant discovery is off in the config" in result.stdout

    result = _run(ROOT / "scripts" / "uninstall.sh", "--purge", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"deleting {root}/var/lib/asl-edge" in result.stdout
    assert not database.exists()
    assert not (root / "etc/asl-edge").exists()


@pytest.mark.slow
def test_install_with_the_kiosk_screen_and_uninstall(installed: Path, wheel: Path, tmp_path: Path):
    root = tmp_path / "root"
    shutil.copytree(installed, root, symlinks=True)
    result = _install(root, wheel, "--screen", "--screen-desktop")
    assert result.returncode == 0, result.stdout + result.stderr
    screen_unit = ROOT / "systemd" / "asl-edge-screen.service"
    assert (root / "etc/systemd/system/asl-edge-screen.service").read_bytes() == screen_unit.read_bytes()
    wanted = root / "etc/systemd/system/multi-user.target.wants/asl-edge-screen.service"
    assert os.readlink(wanted) == "/etc/systemd/system/asl-edge-screen.service"
    autostart = root / "etc/xdg/autostart/asl-edge-screen.desktop"
    assert autostart.read_bytes() == (ROOT / "systemd" / "asl-edge-screen.desktop").read_bytes()
    (page,) = root.glob("opt/asl-edge/venv/lib/python3*/site-packages/edge/runtime/screen/static/index.html")
    assert page.read_bytes() == (ROOT / "edge/runtime/screen/static/index.html").read_bytes()
    passwd = {line.split(":")[0]: line.split(":") for line in (root / "etc/passwd").read_text().splitlines()}
    assert passwd["asl-edge-screen"][6] == "/usr/sbin/nologin"
    assert _values(screen_unit, "User") == ["asl-edge-screen"]
    assert _values(screen_unit, "Wants")[0] == "asl-edge.service"
    assert "asl-edge.service" in _values(screen_unit, "After")
    (exec_start,) = _values(screen_unit, "ExecStart")
    args = build_parser().parse_args(shlex.split(exec_start)[1:])
    assert (args.command, args.cage, Path(args.config)) == ("screen", True, DEFAULT_CONFIG_PATH)
    (desktop_exec,) = [line[5:] for line in autostart.read_text().splitlines() if line.startswith("Exec=")]
    args = build_parser().parse_args(shlex.split(desktop_exec)[1:])
    assert (args.command, args.cage) == ("screen", False)

    result = _run(ROOT / "scripts" / "uninstall.sh", env={"ASL_EDGE_ROOT": str(root)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (root / "etc/systemd/system/asl-edge-screen.service").exists()
    assert not wanted.is_symlink()
    assert not autostart.exists()


def test_desktop_autostart_entry_is_valid():
    result = _run("desktop-file-validate", ROOT / "systemd" / "asl-edge-screen.desktop")
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.slow
def test_units_verify_without_any_warning(installed: Path, tmp_path: Path):
    result = _run("systemd-analyze", "verify", *_units_for(installed, tmp_path))
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.slow
def test_verify_reports_a_misspelt_key(installed: Path, tmp_path: Path):
    """The check above can fail: systemd-analyze only warns on unknown keys, on stderr."""
    (unit,) = [copy for copy in _units_for(installed, tmp_path) if copy.name == UNIT.name]
    unit.write_text(unit.read_text(encoding="utf-8").replace("ProtectHome=", "ProtectHom="))
    result = _run("systemd-analyze", "verify", unit)
    assert "Unknown key 'ProtectHom'" in result.stderr


@pytest.mark.slow
def test_security_exposure_stays_low(installed: Path, tmp_path: Path):
    (unit,) = [copy for copy in _units_for(installed, tmp_path) if copy.name == UNIT.name]
    result = _run("systemd-analyze", "security", "--offline=true", "--no-pager", unit)
    found = re.search(r"Overall exposure level for asl-edge\.service: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= 2.5, result.stdout


def test_exec_start_is_the_cli_run_command_with_the_default_config():
    (exec_start,) = _values(UNIT, "ExecStart")
    argv = shlex.split(exec_start)
    assert argv[0] == f"{VENV}/bin/asl-edge"
    install_script = (ROOT / "scripts" / "install.sh").read_text(encoding="utf-8")
    assert f"venv={VENV}\n" in install_script
    args = build_parser().parse_args(argv[1:])
    assert args.command == "run"
    assert Path(args.config) == DEFAULT_CONFIG_PATH
    assert _values(UNIT, "ConfigurationDirectory") == [DEFAULT_CONFIG_PATH.parent.name]
    assert DEFAULT_CONFIG_PATH.parent == Path("/etc/asl-edge")


def test_kiosk_config_parses_and_uses_the_state_directory():
    config, problems = read_config(ROOT / "config.kiosk.toml")
    assert problems == []
    assert _values(UNIT, "StateDirectory") == ["asl-edge"]
    assert config.storage.state_dir == "/var/lib/asl-edge"


def test_credentials_are_the_files_the_installer_creates():
    loaded = dict(value.split(":", 1) for value in _values(UNIT, "LoadCredential"))
    assert loaded == {
        "mqtt-password": "/etc/asl-edge/credentials/mqtt-password",
        "s3-credentials": "/etc/asl-edge/credentials/s3-credentials",
        "screen-token": "/etc/asl-edge/credentials/screen-token",
    }


def test_unit_keeps_gpu_and_camera_reachable():
    settings = dict(_settings(UNIT))
    assert settings["Type"] == "notify"
    assert settings["User"] == "asl-edge"
    assert "video" in settings["SupplementaryGroups"].split()
    sysusers = (ROOT / "systemd" / "asl-edge.sysusers").read_text(encoding="utf-8")
    assert re.search(r"^u asl-edge ", sysusers, re.M)
    assert re.search(r"^m asl-edge video$", sysusers, re.M)
    # Each of these closes /dev/nvhost-*, /dev/nvmap or /dev/video* (ProtectClock implies a
    # DeviceAllow= list) or breaks CUDA's JIT (MemoryDenyWriteExecute).
    for key in ("PrivateDevices", "DevicePolicy", "DeviceAllow", "ProtectClock", "MemoryDenyWriteExecute"):
        assert key not in settings, key


def test_dockerfile_is_hadolint_clean():
    result = _run(BIN / "hadolint", "Dockerfile.jetson")
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_scripts_are_shellcheck_clean():
    result = _run(BIN / "shellcheck", *sorted((ROOT / "scripts").glob("*.sh")))
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_dockerfile_and_install_script_share_one_apt_list():
    listed = [
        line.split("#")[0].strip()
        for line in (ROOT / "requirements" / "jetson-apt.txt").read_text(encoding="utf-8").splitlines()
    ]
    result = _run(ROOT / "scripts" / "install.sh", "--print-apt-packages")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [package for package in listed if package]
    dockerfile = (ROOT / "Dockerfile.jetson").read_text(encoding="utf-8")
    assert "COPY requirements/jetson-apt.txt " in dockerfile
    installs = re.findall(r"apt-get install[^\n]*", dockerfile)
    assert installs == ["apt-get install -y --no-install-recommends \\"]
    assert "install.sh --print-apt-packages | xargs apt-get install" in dockerfile


def test_docker_context_holds_what_the_install_script_reads():
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    }
    read = set(re.findall(r"\$here/([\w.-]+)", (ROOT / "scripts" / "install.sh").read_text(encoding="utf-8")))
    assert read and read <= allowed
    packages = re.search(r"include=\[([^\]]*)\]", (ROOT / "setup.py").read_text(encoding="utf-8"))
    assert packages
    assert {name.strip(' "').split(".")[0] for name in packages.group(1).split(",")} <= allowed


def test_docker_entrypoint_is_the_run_command():
    dockerfile = (ROOT / "Dockerfile.jetson").read_text(encoding="utf-8")
    entrypoint = re.search(r"^ENTRYPOINT (\[.*\])$", dockerfile, re.M)
    command = re.search(r"^CMD (\[.*\])$", dockerfile, re.M)
    assert entrypoint and command
    argv = [*json.loads(entrypoint.group(1)), *json.loads(command.group(1))]
    assert argv[0] == "asl-edge"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "run"
    assert Path(args.config) == DEFAULT_CONFIG_PATH


def test_docker_healthcheck_is_the_status_liveness_probe():
    dockerfile = (ROOT / "Dockerfile.jetson").read_text(encoding="utf-8")
    healthcheck = re.search(r"^HEALTHCHECK [^\n]*\\\n\s*CMD (\[.*\])$", dockerfile, re.M)
    assert healthcheck
    argv = json.loads(healthcheck.group(1))
    assert argv[0] == "asl-edge"
    args = build_parser().parse_args(argv[1:])
    assert (args.command, args.check) == ("status", True)
    assert Path(args.config) == DEFAULT_CONFIG_PATH
