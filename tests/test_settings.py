"""Settings: defaults, environment, the YAML file, and the terminal UI's CRYSTAL_TUI_DB."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from crystal_atomate.settings import CrystalAtomateSettings


def test_environment_overrides_defaults(monkeypatch):
    monkeypatch.setenv("CRYSTAL_ATOMATE_CRYSTAL_CMD", "Pcrystal")
    monkeypatch.setenv("CRYSTAL_ATOMATE_MAX_ERRORS", "2")
    settings = CrystalAtomateSettings()
    assert (settings.CRYSTAL_CMD, settings.MAX_ERRORS) == ("Pcrystal", 2)


def test_database_follows_the_terminal_ui_variable(monkeypatch, tmp_path):
    monkeypatch.delenv("CRYSTAL_ATOMATE_DB_FILE", raising=False)
    monkeypatch.setenv("CRYSTAL_TUI_DB", str(tmp_path / "ui.db"))
    assert CrystalAtomateSettings().DB_FILE == tmp_path / "ui.db"
    monkeypatch.setenv("CRYSTAL_ATOMATE_DB_FILE", str(tmp_path / "mine.db"))
    assert CrystalAtomateSettings().DB_FILE == tmp_path / "mine.db"


def test_yaml_file_is_read_below_the_environment(monkeypatch, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("CRYSTAL_CMD: /opt/crystal23/bin/crystal\nCRYSTAL_OMP_THREADS: 4\n")
    monkeypatch.setenv("CRYSTAL_ATOMATE_CONFIG_FILE", str(config))
    monkeypatch.delenv("CRYSTAL_ATOMATE_CRYSTAL_CMD", raising=False)
    settings = CrystalAtomateSettings()
    assert (settings.CRYSTAL_CMD, settings.CRYSTAL_OMP_THREADS) == ("/opt/crystal23/bin/crystal", 4)
    monkeypatch.setenv("CRYSTAL_ATOMATE_CRYSTAL_OMP_THREADS", "2")
    assert CrystalAtomateSettings().CRYSTAL_OMP_THREADS == 2


def test_unknown_or_invalid_settings_are_rejected(monkeypatch, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("CRYSTAL_COMMAND: crystal\n")
    monkeypatch.setenv("CRYSTAL_ATOMATE_CONFIG_FILE", str(config))
    with pytest.raises(ValidationError, match="CRYSTAL_COMMAND"):
        CrystalAtomateSettings()
    monkeypatch.delenv("CRYSTAL_ATOMATE_CONFIG_FILE")
    with pytest.raises(ValidationError, match="CRYSTAL_OMP_THREADS"):
        CrystalAtomateSettings(CRYSTAL_OMP_THREADS=0)


def test_reference_directory_is_an_override_only(monkeypatch, tmp_path: Path):
    monkeypatch.delenv("CRYSTAL_ATOMATE_REFERENCE_DIR", raising=False)
    assert CrystalAtomateSettings().REFERENCE_DIR is None
    monkeypatch.setenv("CRYSTAL_ATOMATE_REFERENCE_DIR", str(tmp_path))
    assert CrystalAtomateSettings().REFERENCE_DIR == tmp_path
