"""A Typer group that imports a command's module only when that command runs.

The commands of ``crystal-atomate`` pull in pymatgen, jobflow, atomate2, AiiDA, FireWorks and
jobflow-remote; importing all of them to print ``--help`` or list jobs took seconds. The group
knows each command by name, the ``"module:attribute"`` that defines it and a one-line help text,
so listing the commands imports nothing, and running one imports its module alone.

The group is also where every command ends: :meth:`LazyGroup.main` turns an exception into the
one-line report of :mod:`crystal_atomate.cli.failures` and its exit code.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import typer
from typer import _click as click  # the click Typer vendors (typer >= 0.29); its commands are these
from typer.core import TyperCommand, TyperGroup

from crystal_atomate.cli.failures import debug_requested, report

__all__ = ["LazyCommand", "LazyGroup", "lazy_group"]


@dataclass(frozen=True)
class LazyCommand:
    """Where a command lives and what ``--help`` says about it.

    Parameters
    ----------
    target
        ``"package.module:attribute"``: a Typer app (a command group), a command function, or a
        click command.
    help
        The one-line help shown in the command list (kept here so listing imports nothing).
    """

    target: str
    help: str

    @property
    def module(self) -> str:
        """The module to import."""
        return self.target.partition(":")[0]

    @property
    def attribute(self) -> str:
        """The attribute of the module that defines the command."""
        return self.target.partition(":")[2]

    def available(self) -> bool:
        """Whether the module exists in this installation (without importing it)."""
        try:
            return importlib.util.find_spec(self.module) is not None
        except ModuleNotFoundError:
            return False


def _click_command(name: str, register: Callable[[typer.Typer], None]) -> click.Command:
    """Return the click command Typer builds for whatever ``register`` adds to an empty app.

    A callback keeps the app a group, so a single command is not flattened into its parent and
    no ``--install-completion`` option is added to a sub-app.
    """
    holder = typer.Typer(add_completion=False)
    holder.callback()(lambda: None)
    register(holder)
    group = typer.main.get_command(holder)
    assert isinstance(group, TyperGroup)
    return group.commands[name]


def _load(name: str, spec: LazyCommand, fallback: typer.Typer | None) -> click.Command | None:
    """Import the command's module and build its click command.

    A module that registers its commands on the root app with ``@app.command()`` (as the command
    modules once all did) still works: without the named attribute, the command or sub-app of
    that name registered on ``fallback`` is used.
    """
    module = importlib.import_module(spec.module)
    obj: Any = getattr(module, spec.attribute, None)
    if isinstance(obj, click.Command):
        return obj
    if isinstance(obj, typer.Typer):
        return _click_command(name, lambda holder: holder.add_typer(obj, name=name, help=spec.help))
    if callable(obj):
        return _click_command(name, lambda holder: holder.command(name=name)(obj))
    if fallback is None:
        return None
    for info in fallback.registered_commands:
        if (info.name or getattr(info.callback, "__name__", "").replace("_", "-")) == name:
            return _click_command(
                name, lambda holder, info=info: holder.registered_commands.append(info)
            )
    for group in fallback.registered_groups:
        if group.name == name:
            return _click_command(
                name, lambda holder, group=group: holder.registered_groups.append(group)
            )
    return None


class LazyGroup(TyperGroup):
    """A Typer group whose commands are imported on first use; see the module docstring.

    Subclass it with :func:`lazy_group`, then set :attr:`root`.
    """

    #: Command name -> where it lives and its one-line help.
    lazy_commands: Mapping[str, LazyCommand] = {}
    #: The Typer app built from this group, for modules that still register on it.
    root: typer.Typer | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Eagerly registered commands, then the lazy ones that exist in this installation."""
        eager = super().list_commands(ctx)
        lazy = [
            name
            for name, spec in self.lazy_commands.items()
            if name not in eager and spec.available()
        ]
        return [*eager, *sorted(lazy)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Return the command; while help is written, a stand-in that only knows its help line."""
        command = super().get_command(ctx, cmd_name)
        spec = self.lazy_commands.get(cmd_name)
        if command is not None or spec is None:
            return command
        if self._listing:
            return TyperCommand(name=cmd_name, help=spec.help, short_help=spec.help)
        command = _load(cmd_name, spec, self.root)
        if command is not None:
            self.commands[cmd_name] = command
        return command

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Write the usual help, listing the lazy commands by their stored help line."""
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line; any exception becomes one ``error:`` line and an exit code.

        Raises
        ------
        SystemExit
            In standalone mode (the console script, click's test runner), always, with the
            command's exit code: 0, 1 (a failure), 2 (usage or bad input) or 130 (interrupted).
        """
        argv = list(sys.argv[1:] if args is None else args)
        try:
            result = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(
                exc.ctx.get_help() if exc.ctx is not None else exc.format_message(), err=True
            )
            return self._finish(exc.exit_code, standalone_mode)
        except (Exception, KeyboardInterrupt) as exc:
            if not standalone_mode:
                raise
            return self._finish(report(exc, debug=debug_requested(argv)), standalone_mode)
        return self._finish(result if isinstance(result, int) else 0, standalone_mode, result)

    @staticmethod
    def _finish(code: int, standalone_mode: bool, result: Any = None) -> Any:
        if standalone_mode:
            sys.exit(code)
        return result if result is not None else code


def lazy_group(commands: Mapping[str, LazyCommand]) -> type[LazyGroup]:
    """Return a :class:`LazyGroup` subclass that knows ``commands``.

    Pass it as ``cls`` to :class:`typer.Typer` and set its :attr:`LazyGroup.root` to that app.

    Parameters
    ----------
    commands
        Command name -> :class:`LazyCommand`.

    Returns
    -------
    type[LazyGroup]
        A fresh subclass, so two apps never share their command maps.
    """
    return type("CrystalAtomateGroup", (LazyGroup,), {"lazy_commands": dict(commands)})
