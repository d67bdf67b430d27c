"""Write a replay plan and the environment that makes CRYSTAL commands run the replay executable."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from crystal_atomate.testing.replay import PLAN_ENV, ReplayPlan, ReplayStep

__all__ = ["ReplaySpec", "replay_command", "use_replay"]

ReplaySpec = str | dict[str, Any] | ReplayStep


def replay_command() -> str:
    """Return the replay command; ``python -m`` when the console script is not on PATH."""
    script = shutil.which("crystal-atomate-replay")
    return script or f"{sys.executable} -m crystal_atomate.testing.replay"


def _steps(spec: ReplaySpec | Sequence[ReplaySpec]) -> list[ReplayStep]:
    items = [spec] if isinstance(spec, (str, dict, ReplayStep)) else list(spec)
    return [
        item if isinstance(item, ReplayStep)
        else ReplayStep(recording=item) if isinstance(item, str)
        else ReplayStep.model_validate(item)
        for item in items
    ]


def use_replay(
    jobs: Mapping[str, ReplaySpec | Sequence[ReplaySpec]], plan_dir: Path
) -> dict[str, str]:
    """Write ``plan_dir/plan.json`` for ``jobs`` and return the environment variables to set.

    ``jobs`` maps a job name (a glob pattern) to one recording folder name, a step dict, or a list
    of them replayed in order (a failure, then the recovered run).
    """
    plan_dir.mkdir(parents=True, exist_ok=True)
    plan = ReplayPlan(
        jobs={name: _steps(spec) for name, spec in jobs.items()}, state_dir=plan_dir / "state"
    )
    path = plan_dir / "plan.json"
    path.write_text(plan.model_dump_json(indent=2))
    command = replay_command()
    return {
        PLAN_ENV: str(path),
        "CRYSTAL_ATOMATE_CRYSTAL_CMD": command,
        "CRYSTAL_ATOMATE_PROPERTIES_CMD": command,
    }
