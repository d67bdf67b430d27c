"""``crystal-atomate fw ...`` and ``crystal-atomate remote ...``: FireWorks and jobflow-remote.

Both run the same flows, one flow per structure, with the UI's job list kept up to date.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import track
from rich.table import Table

from crystal_atomate.cli.app import database
from crystal_atomate.cli.flows import load_structure
from crystal_atomate.errors import InputError
from crystal_atomate.flows.registry import build_flow, check_flow_settings

console = Console()
fw_app = typer.Typer(help="Run crystal_atomate flows with FireWorks (embedded LaunchPad default).")
remote_app = typer.Typer(help="Run crystal_atomate flows with jobflow-remote.")

_STRUCTURE_SUFFIXES = {".cif", ".json", ".vasp", ".poscar"}

FUNCTIONAL = typer.Option(None, help="Functional for every CRYSTAL job (e.g. PBE0).")
BASIS = typer.Option(None, help="Basis set library name.")
KSPACING = typer.Option(None, help="k-point spacing (1/Angstrom).")
UI_DB = typer.Option(None, "--db", help="UI database (default: CRYSTAL_TUI_DB or .crystal_tui.db).")
LAUNCHPAD = typer.Option(None, help="my_launchpad.yaml (e.g. MongoDB); default: embedded database.")
FW_DB_DIR = typer.Option(None, help="Embedded LaunchPad folder (~/.crystal_atomate/fireworks).")
PROJECT = typer.Option(None, help="jobflow-remote project name or project YAML file.")


def structure_sources(paths: list[Path]) -> list[str]:
    """Files as given, folders expanded to the structure files in them (sorted, not recursive).

    Anything that is neither stays as is, so ``load_structure`` can read it (a Materials Project
    id) or say what is wrong with it.
    """
    sources: list[str] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                entry for entry in path.iterdir()
                if entry.suffix.lower() in _STRUCTURE_SUFFIXES or entry.name.startswith("POSCAR")
            )
            if not found:
                raise typer.BadParameter(f"no structure files in {path}")
            sources.extend(str(entry) for entry in found)
        else:
            sources.append(str(path))
    return sources


def _flows(flow: str, paths: list[Path], **settings: Any) -> Iterator[Any]:
    """Build one flow per structure, as each is needed, behind a progress bar.

    The flow name, functional and structure paths are checked now, before anything is added.
    """
    check_flow_settings(flow, functional=settings.get("functional"))
    sources = structure_sources(paths)
    description = f"adding {len(sources)} {flow} flows"
    return (
        build_flow(flow, load_structure(source), **settings)
        for source in track(sources, description=description, console=console)
    )


def _ui_store(db: Path | None) -> Any:
    from crystal_atomate.stores.jobstore import CrystalMathJobStore

    return CrystalMathJobStore(database(db))


def _counts_table(title: str, counts: dict[str, int]) -> Table:
    table = Table(title=title)
    table.add_column("state")
    table.add_column("count", justify="right")
    for state, count in sorted(counts.items()):
        table.add_row(state, str(count))
    return table


@fw_app.command("add")
def fw_add(
    flow: str = typer.Argument(..., help="Flow name (static, relax, relax-bands, ...)."),
    structures: list[Path] = typer.Argument(..., help="Structure files and/or folders of them."),
    functional: str = FUNCTIONAL,
    basis: str = BASIS,
    kspacing: float = KSPACING,
    db: Path = UI_DB,
    launchpad: Path = LAUNCHPAD,
    fw_db_dir: Path = FW_DB_DIR,
    fworker: str = typer.Option(None, help="Only launchers of this fworker name run CRYSTAL jobs."),
    category: str = typer.Option(None, help="Only launchers of this category run CRYSTAL jobs."),
    priority: int = typer.Option(None, help="FireWorks priority of the CRYSTAL jobs."),
) -> None:
    """Add one workflow per structure to the LaunchPad; the UI lists its jobs as QUEUED."""
    from crystal_atomate.engines.fireworks import add_flows, open_launchpad

    flows = _flows(flow, structures, functional=functional, basis=basis, kspacing=kspacing)
    pad = open_launchpad(launchpad, fw_db_dir)
    store = _ui_store(db)
    added = add_flows(flows, pad, store, fworker=fworker, category=category, priority=priority)
    fireworks = sum(len(ids) for ids in added.values())
    console.print(f"Added {len(added)} workflows ({fireworks} Fireworks).")
    console.print("Run them: crystal-atomate fw launch")


@fw_app.command("launch")
def fw_launch(
    nlaunchers: int = typer.Option(1, help="Concurrent rlaunch rapidfire processes."),
    launch_dir: Path = typer.Option(Path("."), help="Where the launchers' job folders go."),
    fworker_file: Path = typer.Option(None, help="my_fworker.yaml (name/category) for launchers."),
    launchpad: Path = LAUNCHPAD,
    fw_db_dir: Path = FW_DB_DIR,
) -> None:
    """Run READY Fireworks with N launchers until none is ready or waiting on a running one."""
    from crystal_atomate.engines.fireworks import (
        launchpad_file,
        open_launchpad,
        start_launchers,
        workflow_states,
    )

    pad = open_launchpad(launchpad, fw_db_dir)
    processes = start_launchers(
        nlaunchers, launchpad_file(launchpad, fw_db_dir), launch_dir.resolve(), fworker_file
    )
    try:
        with console.status("launching") as status:
            while any(process.poll() is None for process in processes):
                counts = workflow_states(pad)
                status.update(", ".join(f"{state} {n}" for state, n in sorted(counts.items())))
                time.sleep(1)
    except KeyboardInterrupt:
        for process in processes:
            process.terminate()
        raise
    console.print(_counts_table("Fireworks", dict(workflow_states(pad))))
    failed = [process.args for process in processes if process.returncode]
    if failed:
        console.print(f"[red]{len(failed)} launcher(s) failed; see {launch_dir}/launcher-*.log[/]")
        raise typer.Exit(1)


@fw_app.command("status")
def fw_status(launchpad: Path = LAUNCHPAD, fw_db_dir: Path = FW_DB_DIR) -> None:
    """Fireworks per state, and the ones that fizzled."""
    from crystal_atomate.engines.fireworks import open_launchpad, workflow_states

    pad = open_launchpad(launchpad, fw_db_dir)
    console.print(_counts_table("Fireworks", dict(workflow_states(pad))))
    for doc in pad.fireworks.find({"state": "FIZZLED"}, {"fw_id": 1, "name": 1}):
        console.print(f"[red]FIZZLED[/] fw_id {doc['fw_id']}: {doc['name']}")


def _env_pairs(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--env wants KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


@remote_app.command("init")
def remote_init(
    name: str = typer.Option("crystal_atomate", help="Project name."),
    db_dir: Path = typer.Option(Path("~/.crystal_atomate/jobflow-remote"), help="Queue database."),
    ui_db: Path = typer.Option(None, help="UI database = job store (default: CRYSTAL_TUI_DB)."),
    work_dir: Path = typer.Option(Path("~/crystal_atomate/remote_runs"), help="Job folders."),
    base_dir: Path = typer.Option(None, help="jobflow-remote's runner folder (logs, daemon)."),
    env: list[str] = typer.Option([], help="KEY=VALUE exported for every CRYSTAL job."),
    runner_delay: float = typer.Option(None, help="Seconds between the runner's polls."),
    max_jobs: int = typer.Option(None, help="Jobs the local worker runs at once."),
    warm: bool = typer.Option(
        False,
        "--warm-executor/--plain-executor",
        help="Opt in: fork jobs from a warm server instead of a fresh `jf execution run` each.",
    ),
    force: bool = typer.Option(False, help="Replace an existing project file."),
    cluster_file: Path = typer.Option(None, help="Also a SLURM worker for this cluster file."),
    from_ui: str = typer.Option(None, help="Also a SLURM worker for this cluster of the UI."),
    cluster_work_dir: str = typer.Option(None, help="Where jobs run on that cluster."),
) -> None:
    """Write the crystal_atomate project into the jobflow-remote projects folder.

    With ``--cluster-file`` or ``--from-ui`` the project also gets a worker that submits through
    SSH to the cluster's SLURM (``remote submit --worker NAME`` sends flows there).
    """
    from crystal_atomate.cli.clusters import find_cluster
    from crystal_atomate.engines.clusters import remote_worker_config
    from crystal_atomate.engines.remote import project_config, runner_delays, write_project

    cluster = None
    if cluster_file or from_ui:
        cluster = find_cluster(cluster_file, from_ui, database(ui_db))
        if not cluster_work_dir:
            raise InputError(
                "--cluster-work-dir is needed with a cluster", hint="e.g. /scratch/$USER/ca"
            )

    runner = None if runner_delay is None else runner_delays(runner_delay)
    config = project_config(
        name=name,
        db_dir=db_dir.expanduser(),
        ui_db_file=database(ui_db),
        work_dir=work_dir,
        base_dir=base_dir,
        env=_env_pairs(env),
        runner=runner,
        max_jobs=max_jobs,
        warm_executor=warm,
    )
    if cluster is not None:
        config["workers"][cluster.name] = remote_worker_config(cluster, str(cluster_work_dir))
    try:
        path = write_project(config, overwrite=force)
    except FileExistsError as exc:
        raise typer.BadParameter(f"{exc} (use --force)") from exc
    console.print(f"Wrote {path}\nNext: jf -p {name} admin reset; jf -p {name} runner start")


@remote_app.command("submit")
def remote_submit(
    flow: str = typer.Argument(..., help="Flow name (static, relax, relax-bands, ...)."),
    structures: list[Path] = typer.Argument(..., help="Structure files and/or folders of them."),
    functional: str = FUNCTIONAL,
    basis: str = BASIS,
    kspacing: float = KSPACING,
    project: str = PROJECT,
    worker: str = typer.Option("local_shell", help="Worker of the project to run on."),
) -> None:
    """Queue one flow per structure for the jobflow-remote runner; the UI lists them as QUEUED."""
    from crystal_atomate.engines.remote import submit_flows

    flows = _flows(flow, structures, functional=functional, basis=basis, kspacing=kspacing)
    submitted = submit_flows(flows, project, worker=worker)
    console.print(f"Submitted {len(submitted)} flows. Start the runner: jf runner start")


@remote_app.command("status")
def remote_status(project: str = PROJECT) -> None:
    """Bring the UI's job list up to date with the queue; show failed jobs with their error."""
    from crystal_atomate.engines.remote import failed_jobs, sync_ui_states

    updated = sync_ui_states(project)
    console.print(_counts_table("UI rows updated", dict(updated)))
    for failure in failed_jobs(project):
        console.print(f"[red]{failure.state}[/] {failure.name} {failure.uuid}:{failure.index}")
        console.print(f"  {failure.error}")
