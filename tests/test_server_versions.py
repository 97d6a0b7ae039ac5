"""lmmclf against each behaviour the supported `transformers serve` versions show, reproduced on loopback.

Where lmmclf reacts to another program's behaviour, the test drives lmmclf with every variant the
supported versions show and checks what lmmclf does and writes, not what the server says. A model
without a chat template: up to transformers 5.24 the server answers a bare HTTP 500 to every
request, from 5.25 an HTTP 400 naming the missing template.
"""

from __future__ import annotations

import json

import pytest

from lmmclf.cli.app import app
from lmmclf.datasets import register
from lmmclf.testing.layouts import make_imagefolder
from lmmclf.testing.openai_server import FakeOpenAIServer

NO_CHAT_TEMPLATE = {"transformers serve <= 5.24": "500_plain", "transformers serve 5.25": "400_no_template"}


@pytest.fixture
def pets(tmp_path):
    root = make_imagefolder(tmp_path / "pets", class_names=("a", "b"), n_train=2, n_test=1)  # 6 images
    register("pets", root, "imagefolder")
    return root


def _describe(runner, server, config, *extra):
    return runner.invoke(app, ["-c", str(config), "describe", "pets", "--backend", "openai", "--base-url", server.url,
                               "--model", "m", "--concurrency", "1", "--json", *extra])


@pytest.mark.parametrize("fault", NO_CHAT_TEMPLATE.values(), ids=NO_CHAT_TEMPLATE.keys())
def test_a_model_without_a_chat_template_fails_the_run_and_a_fixed_server_then_describes_everything(runner, pets, tmp_path, fault):
    config = tmp_path / "exp.yaml"
    config.write_text("describe:\n  retry_backoff: 0\n  max_retries: 1\n")
    with FakeOpenAIServer(script=[fault] * 100) as server:
        failed = _describe(runner, server, config)
        asked = len(server.requests)
    assert failed.exit_code == 1, failed.output
    assert json.loads(failed.stdout)["described"] == 0
    error = " ".join(failed.stderr.split("Error:", 1)[1].split())
    assert "Traceback" not in failed.stderr and f"lmmclf -c {config} describe pets" in error  # one message, with the command to run again
    assert 1 <= asked <= 6 * 2  # never more than max_retries + 1 tries an image

    with FakeOpenAIServer() as fixed:  # the model got its template back: nothing from the failed run is final
        again = _describe(runner, fixed, config)
        assert len(fixed.requests) == 6
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout)
    assert summary["described"] == 6 and summary["failed"] == 0
