"""One settings object for the whole package.

Values come, highest priority first, from keyword arguments, ``CRYSTAL_ATOMATE_*`` environment
variables, ``~/.crystal_atomate.yaml`` (or the file named by ``CRYSTAL_ATOMATE_CONFIG_FILE``), then
the defaults below. The shared database path also honours ``CRYSTAL_TUI_DB``, the variable the
CRYSTAL-TOOLS terminal UI reads, so both programs open the same file without extra configuration.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

__all__ = ["CrystalAtomateSettings"]

_CONFIG_FILE_ENV = "CRYSTAL_ATOMATE_CONFIG_FILE"
_DEFAULT_CONFIG_FILE = Path("~/.crystal_atomate.yaml")


def _config_file() -> Path:
    return Path(os.environ.get(_CONFIG_FILE_ENV, _DEFAULT_CONFIG_FILE)).expanduser()


class CrystalAtomateSettings(BaseSettings):
    """Settings for running CRYSTAL and for where results go."""

    model_config = SettingsConfigDict(env_prefix="CRYSTAL_ATOMATE_", extra="forbid")

    CRYSTAL_CMD: str = Field(
        "crystal",
        description="Serial (or OpenMP) CRYSTAL command; the deck is fed on standard input.",
    )
    CRYSTAL_MPI_CMD: str | None = Field(
        None,
        description="Parallel command, e.g. 'mpirun -np 4 Pcrystal'. Reads a file named INPUT and "
        "writes its output to stderr; used when a job asks for more than one MPI process.",
    )
    PROPERTIES_CMD: str = Field(
        "properties", description="Serial properties command (reads fort.9)."
    )
    PROPERTIES_MPI_CMD: str | None = Field(
        None, description="Parallel properties, e.g. Pproperties."
    )
    CRYSTAL_OMP_THREADS: int = Field(1, ge=1, description="OMP_NUM_THREADS for CRYSTAL runs.")
    SCRATCH_DIR: Path | None = Field(
        None, description="Run in a scratch directory and copy results back; None runs in place."
    )
    DB_FILE: Path = Field(
        default_factory=lambda: Path(os.environ.get("CRYSTAL_TUI_DB", ".crystal_tui.db")),
        description="The SQLite database shared with the CRYSTAL-TOOLS terminal UI.",
    )
    DB_LOCK_DEADLINE: float = Field(
        60.0,
        gt=0,
        description="Seconds a writer of the shared database waits, retrying with backoff, while "
        "another program (the UI, a sqlite3 shell) holds its write lock; then the write fails "
        "with an error naming the file and what was not written.",
    )
    REFERENCE_DIR: Path | None = Field(
        None,
        description="Another folder of recorded real CRYSTAL runs for the replay executable and "
        "the tests; None uses the ones in crystal_atomate/testing/recordings.",
    )
    HANDLE_UNSUCCESSFUL: str | bool = Field(
        "error",
        description="What a job does when CRYSTAL still fails after every fix, as in atomate2: "
        "'error' raises, True stores the task document and stops the children, False stores it "
        "and lets the children run.",
    )
    MAX_ERRORS: int = Field(
        5, ge=0, description="Maximum restarts the error handlers may make per job."
    )

    @field_validator("DB_FILE", "REFERENCE_DIR", "SCRATCH_DIR", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Order the sources: arguments, then environment, then the YAML config file if it exists.

        pydantic-settings calls this hook; dotenv and secret files are left out on purpose (the
        config file is the one place for persistent settings).
        """
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config = _config_file()
        if config.is_file():
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config))
        return tuple(sources)
