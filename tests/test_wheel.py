"""The wheel installs anywhere: built from this checkout, installed with its dependencies into a
clean virtualenv outside it, and run from an empty directory, where it finds only its own modules
and its package data (the demo bundle)."""

import csv
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
OWN_TOP_LEVEL = {"asl_edge", "edge", "convert", "calibration"}
FOREIGN = ("demo", "bench", "tests")


def _run(*command: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )


def test_the_wheel_installs_into_a_clean_virtualenv_and_works_from_an_empty_directory(tmp_path):
    source, dist, venv, empty = (tmp_path / name for name in ("source", "dist", "venv", "empty"))
    # From a copy of the checkout's files (tracked, or new and not ignored): a build/ folder left in
    # the checkout could add stale modules to the wheel.
    listed = _run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard").stdout.split("\0")
    for name in filter(lambda name: (ROOT / name).is_file(), listed):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    built = _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        dist,
        source,
        cwd=source,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("asl_edge-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert {name.split("/")[0] for name in names if ".dist-info/" not in name} == OWN_TOP_LEVEL
    assert "edge/demo/bundle/model.onnx" in names
    assert "calibration/dataset/latest.sql" in names, "the dataset build's queries are package data"
    assert "calibration/fleet/judged.sql" in names, "so are the fleet report's and the rollout step's"

    assert _run(sys.executable, "-m", "venv", venv).returncode == 0
    pins = ROOT / "requirements" / "ci.txt"
    installed = _run(venv / "bin" / "python", "-m", "pip", "install", "-q", "--constraint", pins, wheel)
    assert installed.returncode == 0, installed.stderr[-3000:]

    empty.mkdir()
    asl_edge = venv / "bin" / "asl-edge"
    assert "recognize" in _run(asl_edge, "--help", cwd=empty).stdout
    probe = "import importlib.util as u, sys; sys.exit(','.join(n for n in %r if u.find_spec(n)) or None)"
    foreign = _run(venv / "bin" / "python", "-c", probe % (FOREIGN,), cwd=empty)
    assert foreign.returncode == 0, foreign.stderr

    synth = _run(asl_edge, "synth", "--out", "data", "--clips", "3", "--seed", "4", cwd=empty)
    assert synth.returncode == 0, synth.stderr
    with open(empty / "data" / "labels.csv", newline="", encoding="utf-8") as handle:
        expected = {f"data/{row['file']}": row["word"] for row in csv.DictReader(handle)}
    recognized = _run(asl_edge, "recognize", *sorted(expected), cwd=empty)
    assert recognized.returncode == 0, recognized.stderr
    assert dict(line.split("\t")[:2] for line in recognized.stdout.splitlines()) == expected

    (empty / "good.toml").write_text('[device]\nid = "kiosk-1"\n', encoding="utf-8")
    (empty / "bad.toml").write_text("[source]\nfps = 0\n", encoding="utf-8")
    assert _run(asl_edge, "check-config", "good.toml", cwd=empty).stdout == "good.toml: ok\n"
    bad = _run(asl_edge, "check-config", "bad.toml", cwd=empty)
    assert (bad.returncode, bad.stdout) == (2, "source.fps: 0 is below the minimum 1\n")
