"""``crystal-atomate cluster``: the shipped cluster file and a cluster the UI defined become a
FireWorks queue adapter and a jobflow-remote worker; bad input is one line and writes nothing."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from crystal_atomate.cli import app
from crystal_atomate.engines.remote import project_config, write_project
from crystal_atomate.testing.hpc import CLUSTER_EXAMPLE
from crystal_atomate.testing.ui_client import UIClientMissing, ui_module

runner = CliRunner()


def test_fireworks_queue_adapter_from_the_cluster_file(tmp_path: Path) -> None:
    out = tmp_path / "my_qadapter.yaml"
    result = runner.invoke(
        app,
        [
            "cluster",
            "fireworks",
            "--cluster-file",
            str(CLUSTER_EXAMPLE),
            "--launchpad",
            str(tmp_path / "my_launchpad.yaml"),
            "--out",
            str(out),
            "--walltime",
            "02:00:00",
            "--ntasks",
            "4",
        ],
    )
    assert result.exit_code == 0, result.output
    adapter = yaml.safe_load(out.read_text())
    assert adapter["_fw_q_type"] == "SLURM" and adapter["queue"] == "debug"
    assert (adapter["walltime"], adapter["ntasks"]) == ("02:00:00", 4)
    assert (
        adapter["pre_rocket"]
        == "export OMP_NUM_THREADS=1\nexport CRYSTAL_ATOMATE_CLUSTER=loopback-slurm"
    )
    assert adapter["rocket_launch"].endswith(f"-l {tmp_path / 'my_launchpad.yaml'} singleshot")
    assert "qlaunch" in result.output and str(out) in result.output


def test_remote_worker_added_to_a_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import jobflow_remote

    monkeypatch.setattr(jobflow_remote.SETTINGS, "projects_folder", str(tmp_path / "projects"))
    write_project(
        project_config(name="cluster_test", db_dir=tmp_path / "db"), tmp_path / "projects"
    )
    result = runner.invoke(
        app,
        [
            "cluster",
            "remote",
            "--cluster-file",
            str(CLUSTER_EXAMPLE),
            "--project",
            "cluster_test",
            "--work-dir",
            "/scratch/root/ca",
            "--pre-run",
            "source ~/venv/bin/activate",
        ],
    )
    assert result.exit_code == 0, result.output
    worker = yaml.safe_load((tmp_path / "projects" / "cluster_test.yaml").read_text())["workers"][
        "loopback-slurm"
    ]
    assert (worker["type"], worker["scheduler_type"], worker["port"]) == ("remote", "slurm", 2222)
    assert worker["resources"] == {"partition": "debug"}
    assert worker["pre_run"] == (
        "export OMP_NUM_THREADS=1\nexport CRYSTAL_ATOMATE_CLUSTER=loopback-slurm\nsource "
        "~/venv/bin/activate"
    )


def test_a_ui_cluster_becomes_a_queue_adapter_and_the_ui_row_is_untouched(tmp_path: Path) -> None:
    try:
        database = ui_module("src.core.database")
    except UIClientMissing as exc:
        pytest.skip(str(exc))
    db = tmp_path / ".crystal_tui.db"
    database.Database(db).create_cluster(
        name="hpc",
        type="slurm",
        hostname="login.example.org",
        username="bob",
        connection_config={
            "key_file": "/home/bob/.ssh/id_ed25519",
            "slurm": {"partition": "batch", "account": "chem"},
        },
    )
    before = _dump(db)
    out = tmp_path / "q.yaml"
    result = runner.invoke(
        app,
        [
            "cluster",
            "fireworks",
            "--from-ui",
            "hpc",
            "--db",
            str(db),
            "--launchpad",
            "lp.yaml",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    adapter = yaml.safe_load(out.read_text())
    assert (adapter["queue"], adapter["account"]) == ("batch", "chem")
    assert _dump(db) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["cluster", "fireworks", "--launchpad", "lp.yaml"],
            "exactly one of --cluster-file and --from-ui",
        ),
        (
            [
                "cluster",
                "fireworks",
                "--launchpad",
                "lp.yaml",
                "--from-ui",
                "nope",
                "--db",
                "ui.db",
            ],
            "ui.db",
        ),
        (
            ["cluster", "remote", "--work-dir", "/w", "--cluster-file", "missing.yaml"],
            "missing.yaml",
        ),
    ],
)
def test_bad_cluster_input_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and message in lines[0], lines
    assert "Traceback" not in result.output + result.stderr
    assert list(tmp_path.iterdir()) == []


def _dump(db: Path) -> list[str]:
    with closing(sqlite3.connect(db)) as conn:
        return list(conn.iterdump())


def test_remote_init_with_a_cluster_writes_its_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JFREMOTE_PROJECTS_FOLDER", str(tmp_path / "projects"))
    import jobflow_remote

    monkeypatch.setattr(jobflow_remote.SETTINGS, "projects_folder", str(tmp_path / "projects"))
    result = runner.invoke(app, [
        "remote", "init", "--name", "with_cluster", "--db-dir", str(tmp_path / "db"),
        "--ui-db", str(tmp_path / "ui.db"), "--cluster-file", str(CLUSTER_EXAMPLE),
        "--cluster-work-dir", "/scratch/root/ca",
    ])
    assert result.exit_code == 0, result.output
    workers = yaml.safe_load((tmp_path / "projects" / "with_cluster.yaml").read_text())["workers"]
    assert set(workers) == {"local_shell", "loopback-slurm"}
    assert workers["loopback-slurm"]["work_dir"] == "/scratch/root/ca"
    missing = runner.invoke(app, [
        "remote", "init", "--name", "x", "--db-dir", str(tmp_path / "db"),
        "--cluster-file", str(CLUSTER_EXAMPLE),
    ])
    assert missing.exit_code == 2 and "--cluster-work-dir" in missing.stderr
