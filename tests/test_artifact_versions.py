"""Each artifact says what made it (issue 21, item 4): the versions of lmmclf, Python, torch,
transformers and open_clip, written by the store's one writer and shown by ``lmmclf cache info``."""

from __future__ import annotations

import json
import platform
from importlib import metadata

import h5py
import pytest

import lmmclf
from lmmclf.cli.app import app

DISTRIBUTIONS = {"torch": "torch", "transformers": "transformers", "open_clip": "open_clip_torch"}


def _public(version: str) -> str:
    return version.split("+")[0]  # torch's imported version carries its build (+cu130), its metadata may not


@pytest.fixture
def embedded(tmp_path, tiny_clip, runner):
    """The key of an embed-image artifact made by the real ``lmmclf embed`` on a tiny image folder."""
    from lmmclf.testing.layouts import make_imagefolder
    from lmmclf.testing.paper1 import toy_config

    root = make_imagefolder(tmp_path / "images", class_names=("a", "b"), n_train=2, n_test=1)
    config = tmp_path / "exp.yaml"
    config.write_text(toy_config(root, tiny_clip).to_yaml())
    made = runner.invoke(app, ["-c", str(config), "embed", "--images-only"])
    assert made.exit_code == 0, made.output
    listing = runner.invoke(app, ["cache", "ls", "--stage", "embed-image", "--json"])
    rows = json.loads(listing.stdout)
    assert len(rows) == 1
    return rows[0]


def test_cache_info_shows_the_versions_an_artifact_was_made_with(embedded, runner):
    shown = runner.invoke(app, ["cache", "info", embedded["key"][:10], "--json"])
    assert shown.exit_code == 0, shown.output
    made_with = json.loads(shown.stdout)["made_with"]
    assert made_with["lmmclf"] == lmmclf.__version__
    assert made_with["python"] == platform.python_version()
    for name, distribution in DISTRIBUTIONS.items():
        assert _public(made_with[name]) == _public(metadata.version(distribution)), name

    text = runner.invoke(app, ["cache", "info", embedded["key"][:10]])
    assert text.exit_code == 0, text.output
    line = " ".join(text.stderr.split())
    assert f"made with: lmmclf {lmmclf.__version__}, python {platform.python_version()}, torch {made_with['torch']}" in line
    assert f"transformers {made_with['transformers']}, open_clip {made_with['open_clip']}" in line
    assert "embed-image" in line and embedded["key"] in line

    # cache show prints the record as data, not as a JSON string
    provenance = json.loads(runner.invoke(app, ["cache", "show", embedded["key"][:10], "--json"]).stdout)
    assert provenance["lmmclf_made_with"] == made_with


def test_an_artifact_from_before_the_versions_says_not_recorded(embedded, runner):
    with h5py.File(embedded["path"], "a") as handle:  # what an artifact written by an older lmmclf holds
        del handle.attrs["lmmclf_made_with"]
    shown = runner.invoke(app, ["cache", "info", embedded["key"][:10]])
    assert shown.exit_code == 0, shown.output
    line = " ".join(shown.stderr.split())
    assert f"lmmclf {lmmclf.__version__}, python not recorded, torch not recorded, transformers not recorded, open_clip not recorded" in line

    with h5py.File(embedded["path"], "a") as handle:
        del handle.attrs["lmmclf_version"]
    as_json = runner.invoke(app, ["cache", "info", embedded["key"][:10], "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert set(json.loads(as_json.stdout)["made_with"].values()) == {"not recorded"}
