"""The real ``transformers serve`` (an OpenAI-compatible server from transformers), run offline on the CPU.

For tests and manual checks of the ``openai`` backend against a real server rather than the
fault server (:mod:`lmmclf.testing.openai_server`). It needs transformers' serving extra
(``pip install 'transformers[serving]'``: fastapi, uvicorn, openai, starlette), no network and
no GPU: models are local folders (e.g. :func:`lmmclf.testing.tiny_lmm.make_tiny_llava`), named
in each request by their path (a server started without a model loads whatever folder a request
names, and keeps it loaded).

:func:`leak_token` rewires a tiny model so that its answers end with a token its tokenizer does
not mark special, such as ``<|im_end|>``: the server decodes with ``skip_special_tokens=True``,
so that is how such tokens reach a client.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_READY = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


def serve_available() -> bool:
    """Whether ``transformers serve`` can start here (transformers' serving extra is installed)."""
    try:
        from transformers.utils.import_utils import is_serve_available
    except ImportError:
        return False
    return bool(is_serve_available())


@dataclass
class RunningServer:
    """A started ``transformers serve``: its ``/v1`` URL (once :meth:`wait_ready`), its log file and its process."""

    log: Path
    process: subprocess.Popen
    url: str = ""

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_ready(self, timeout: float = 180.0) -> str:
        """Wait until the server listens; its ``/v1`` URL.

        Raises:
            RuntimeError: the server exited or did not listen in time (the message ends with its log).
        """
        deadline = time.monotonic() + timeout
        while not self.url:
            found = _READY.search(self.log_text())  # uvicorn names the port it bound (--port 0)
            if found:
                self.url = f"http://127.0.0.1:{found.group(1)}/v1"
            elif self.process.poll() is not None or time.monotonic() > deadline:
                why = f"exited with {self.process.returncode}" if self.process.poll() is not None else f"did not listen within {timeout:g} s"
                raise RuntimeError(f"transformers serve {why}; its log:\n{self.log_text()[-4000:]}")
            else:
                time.sleep(0.1)
        return self.url


@contextmanager
def transformers_serve(log: str | Path, model: str | Path | None = None, wait: bool = True, startup_timeout: float = 180.0,
                       threads: int | None = None, extra_args: tuple[str, ...] = ()) -> Iterator[RunningServer]:
    """Start ``transformers serve`` on 127.0.0.1 (a free port); stop it on exit.

    Args:
        log: file that receives the server's stdout and stderr.
        model: a model to pin the server to (``transformers serve MODEL``); None serves any folder asked for.
        wait: wait until it listens before yielding (else call :meth:`RunningServer.wait_ready`, e.g. after
            building the models while it starts).
        startup_timeout: seconds to wait for it to listen (with ``wait``).
        threads: torch threads of the server (OMP_NUM_THREADS); tiny models gain nothing from many.
        extra_args: more ``transformers serve`` options.

    Raises:
        RuntimeError: the server exited or did not listen in time (the message ends with its log).
    """
    log = Path(log)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    command = [sys.executable, "-m", "transformers.cli.transformers", "serve", *([str(model)] if model else []),
               "--device", "cpu", "--host", "127.0.0.1", "--port", "0", *extra_args]
    with open(log, "wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    try:
        server = RunningServer(log, process)
        if wait:
            server.wait_ready(startup_timeout)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def leak_token(directory: str | Path, token: str = "<|im_end|>") -> Path:
    """Make the tiny model in ``directory`` end its answers with ``token``, an ordinary (not special) token.

    That is a model whose end-of-turn token its tokenizer does not mark special: the server stops at
    it (it is an end token of the generation config) and decodes it into the answer, since
    ``skip_special_tokens=True`` keeps it. ``token`` takes the end token's output row, which is
    zeroed, and joins the generation config's end tokens: the answers are otherwise unchanged.

    Args:
        directory: a tiny LMM folder (e.g. made by ``make_tiny_llava`` and ``teach_numbered_lists``), changed in place.
        token: the text the answers should end with.
    """
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    directory = Path(directory)
    processor = AutoProcessor.from_pretrained(directory)
    model = AutoModelForImageTextToText.from_pretrained(directory)
    tokenizer = processor.tokenizer
    end = tokenizer.eos_token_id
    tokenizer.add_tokens([token], special_tokens=False)
    new = tokenizer.convert_tokens_to_ids(token)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    inputs, outputs = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    if inputs.data_ptr() == outputs.data_ptr():
        raise ValueError("the model ties its input and output embeddings: its output rows cannot be moved alone")
    with torch.no_grad():
        inputs[new] = inputs[end]
        outputs[new] = outputs[end]
        outputs[end] = 0.0
    model.generation_config.eos_token_id = [end, new]
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory
