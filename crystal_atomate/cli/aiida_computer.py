"""``crystal-atomate aiida computer add``: a cluster (SSH + scheduler) and its CRYSTAL codes.

The cluster comes from options, from a cluster file with the UI's fields
(``stores/clusters/*.yaml``), or from a cluster the CrystalMath UI defined in the shared database;
the code's executable is checked on the cluster, then the same checks as ``verdi computer test``
run. AiiDA is imported inside the command, so ``--help`` stays light.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

computer_app = typer.Typer(help="Remote computers (SSH + SLURM) for CRYSTAL.", no_args_is_help=True)


@computer_app.callback()
def computer() -> None:
    """Remote computers (SSH + SLURM) for CRYSTAL (a group, so ``add`` stays a subcommand)."""


@computer_app.command("add")
def add(
    name: Annotated[
        str | None, typer.Argument(help="Computer label (default: the cluster's name).")
    ] = None,
    host: Annotated[str | None, typer.Option(help="SSH host of the login node.")] = None,
    port: Annotated[int, typer.Option(help="SSH port.")] = 22,
    user: Annotated[str | None, typer.Option(help="SSH user.")] = None,
    key: Annotated[Path | None, typer.Option(help="SSH private key (absolute path).")] = None,
    scheduler: Annotated[str, typer.Option(help="slurm, pbspro, sge, lsf or direct.")] = "slurm",
    workdir: Annotated[
        str, typer.Option(help="Where calculations run on the cluster.")
    ] = "/tmp/{username}/aiida_run",
    mpi: Annotated[str, typer.Option(help="MPI launcher (srun under SLURM).")] = "srun",
    mpiprocs: Annotated[int | None, typer.Option(help="Default MPI processes per node.")] = None,
    cluster_file: Annotated[
        Path | None, typer.Option(help="A cluster file (stores/clusters/*.yaml).")
    ] = None,
    from_ui: Annotated[
        str | None, typer.Option(help="A cluster the CrystalMath UI defined, by name.")
    ] = None,
    db: Annotated[Path, typer.Option(help="The UI's database, for --from-ui.")] = Path(
        ".crystal_tui.db"
    ),
    crystal: Annotated[
        str | None, typer.Option(help="crystal (or Pcrystal) executable on the cluster.")
    ] = None,
    properties: Annotated[
        str | None, typer.Option(help="properties executable on the cluster.")
    ] = None,
    poll: Annotated[float, typer.Option(help="Seconds between two scheduler queries.")] = 10.0,
    profile: Annotated[
        str | None, typer.Option(help="AiiDA profile (default: the default one).")
    ] = None,
    prefix: Annotated[
        str, typer.Option(help="Code label prefix (codes PREFIXcrystal, PREFIXproperties).")
    ] = "",
) -> None:
    """Create (idempotently) the computer and its codes, then test the connection and scheduler."""
    from crystal_atomate.aiida.computers import (
        ClusterComputer,
        check_computer,
        cluster_from_ui,
        ensure_remote_code,
        ensure_ssh_computer,
    )
    from crystal_atomate.stores.ui_clusters import load_cluster_file, read_ui_cluster

    if cluster_file or from_ui:
        cluster = (
            load_cluster_file(cluster_file) if cluster_file else read_ui_cluster(db, str(from_ui))
        )
        spec = replace(cluster_from_ui(cluster, workdir), poll_interval=poll)
        crystal = crystal or (f"{cluster.cry23_root}/bin/crystal" if cluster.cry23_root else None)
        properties = properties or (
            f"{cluster.cry23_root}/bin/properties" if cluster.cry23_root else None
        )
    else:
        if not (host and user):
            raise typer.BadParameter("give --host and --user, or --cluster-file, or --from-ui")
        spec = ClusterComputer(
            label=name or host, host=host, port=port, username=user,
            key_filename=str(key.expanduser().resolve()) if key else None,
            scheduler=f"core.{scheduler}", workdir=workdir, mpirun_command=mpi,
            mpiprocs_per_machine=mpiprocs, poll_interval=poll,
        )
    if name:
        spec = replace(spec, label=name)
    _load_profile(profile)
    computer = ensure_ssh_computer(spec)
    typer.echo(
        f"computer {computer.label}: {spec.username}@{spec.host}:{spec.port} ({spec.scheduler})"
    )
    for label, executable, plugin in (
        ("crystal", crystal, "crystal_atomate.crystal"),
        ("properties", properties, "crystal_atomate.properties"),
    ):
        if executable:
            code = ensure_remote_code(f"{prefix}{label}", computer, executable, plugin)
            typer.echo(f"code {code.full_label} -> {executable}")
    for check in check_computer(computer):
        typer.echo(f"ok: {check}")


def _load_profile(profile: str | None) -> None:
    """Load ``profile`` (or the default one), as verdi does."""
    from aiida import load_profile

    load_profile(profile, allow_switch=True)
