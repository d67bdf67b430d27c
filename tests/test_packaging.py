"""The distributions work on their own: the wheel, installed outside the checkout, runs the demo.

``python -m build`` makes the sdist and, from it, the wheel; the wheel goes into a fresh venv
(``--system-site-packages`` for the large dependencies, the package itself installed with
``--no-deps`` and checked to be imported from the venv, not from the checkout); ``crystal-atomate
demo`` then runs in an empty folder with a fresh HOME, no PYTHONPATH and no
``CRYSTAL_ATOMATE_*`` variables, so every recording it replays comes from the installed package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[1]
DEMO_RECORDINGS = {
    "mgo_opt_b3lyp_crystal22",
    "mgo_scf_band_doss_b3lyp_crystal17",
    "nio_scf_too_many_cycles_crystal17",
    "nio_scf_restart_guessp_crystal17",
}
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", "__pycache__", "*.egg-info", "build", "dist", ".venv", ".pytest_cache", ".hypothesis",
    "site", ".work", ".crystal_tui.db*",
)


def _recording_folders(names: list[str]) -> set[str]:
    """Recording folders among archive member names (``.../testing/recordings/<folder>/<file>``)."""
    folders = set()
    for name in names:
        parts = name.split("/")
        if "recordings" in parts and len(parts) > parts.index("recordings") + 2:
            folders.add(parts[parts.index("recordings") + 1])
    return folders - {"LICENSES"}


def _clean_env(home: Path, venv: Path) -> dict[str, str]:
    """The environment of a new user: nothing pointing at the checkout or at other recordings."""
    dropped = {"PYTHONPATH", "VIRTUAL_ENV", "CRYSTAL_TUI_DB"}
    env = {
        key: value for key, value in os.environ.items()
        if key not in dropped and not key.startswith("CRYSTAL_ATOMATE_")
    }
    env.update(HOME=str(home), PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    return env


@pytest.fixture(scope="module")
def distributions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sdist and the wheel, built from a copy of the checkout (no build files left in it)."""
    base = tmp_path_factory.mktemp("dist")
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCE)
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(base / "out"), str(source)],
        check=True, capture_output=True, text=True, timeout=900,
    )
    (sdist,) = (base / "out").glob("*.tar.gz")
    (wheel,) = (base / "out").glob("*.whl")
    return sdist, wheel


def test_the_distributions_carry_only_the_demos_recordings_with_their_licences(distributions):
    sdist, wheel = distributions
    wheel_names = zipfile.ZipFile(wheel).namelist()
    with tarfile.open(sdist) as archive:
        sdist_names = archive.getnames()
    assert _recording_folders(wheel_names) == _recording_folders(sdist_names) == DEMO_RECORDINGS
    recordings = "crystal_atomate/testing/recordings"
    licences = ["MIT-CRYSTALpytools.txt", "LGPL-3.0-aiida-crystal17.txt", "GPL-3.0.txt"]
    for text in ["MANIFEST.md", *(f"LICENSES/{name}" for name in licences)]:
        assert f"{recordings}/{text}" in wheel_names
    for folder in DEMO_RECORDINGS:
        assert f"{recordings}/{folder}/SOURCE.md" in wheel_names
    assert wheel.stat().st_size < 1_000_000


def test_the_installed_wheel_runs_the_demo_in_an_empty_folder(distributions, tmp_path):
    _, wheel = distributions
    venv, home, work = tmp_path / "venv", tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300
    )
    python = venv / "bin" / "python"
    pip = [
        str(python),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-index",
        "--ignore-installed",
    ]
    subprocess.run([*pip, str(wheel)], check=True, capture_output=True, timeout=300)
    env = _clean_env(home, venv)
    where = subprocess.run(
        [
            str(python),
            "-c",
            "import crystal_atomate.testing.reference as r; print(r.__file__, r.reference_dir())",
        ],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout.split()
    installed = (
        venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    )
    testing = installed / "crystal_atomate" / "testing"
    assert [Path(path) for path in where] == [testing / "reference.py", testing / "recordings"]

    demo = subprocess.run(
        [str(venv / "bin" / "crystal-atomate"), "demo"],
        cwd=work, env=env, capture_output=True, text=True, timeout=900,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert demo.stdout.count("COMPLETED") == 5
    for energy in ("-275.4486980727", "-275.4485911374", "-3128.2821705429"):
        assert energy in demo.stdout
    assert "Warning" not in demo.stderr and "Traceback" not in demo.stderr, demo.stderr
    assert sorted(path.name for path in work.iterdir()) == [
        ".crystal_tui.db",
        "crystal-atomate-demo",
    ]
