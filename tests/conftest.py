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
    monkeypatch.delenv("LMMCLF_CONFIG", raising=False)  # a developer's exported config must not reach the tests
    return {"cache": cache, "config": config}


@pytest.fixture
def runner():
    from typer.testing import CliRunner

    return CliRunner()


@pytest.fixture
def store(isolated_user_dirs):
    from lmmclf.store import ArtifactStore

    return ArtifactStore(isolated_user_dirs["cache"])


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads; on a busy 2-core runner (two xdist workers)
    extra threads only spin. Benchmarks, not tests, measure multi-threaded speed."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A tiny 12-block open_clip CLIP saved as a ``local-dir:`` model (its open_clip name)."""
    from lmmclf.testing.tiny_clip import make_tiny_clip

    return make_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny")
