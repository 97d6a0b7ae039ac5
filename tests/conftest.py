"""Shared test fixtures: every test gets its own cache and user-config folders."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("LMMCLF_NO_PROGRESS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path, monkeypatch):
    """Point the artifact cache and the user config (registered datasets) at temp folders."""
    cache = tmp_path / "cache"
    config = tmp_path / "user-config"
    monkeypatch.setenv("LMMCLF_CACHE", str(cache))
    monkeypatch.setenv("LMMCLF_CONFIG_DIR", str(config))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return {"cache": cache, "config": config}


@pytest.fixture
def runner():
    from typer.testing import CliRunner

    return CliRunner()


@pytest.fixture
def store(isolated_user_dirs):
    from lmmclf.store import ArtifactStore

    return ArtifactStore(isolated_user_dirs["cache"])
