"""The ``openai`` backend: any OpenAI-compatible chat-completions server (vLLM, SGLang, ...).

This is the scale-out path: a vLLM deployment batches continuously across requests and
spreads the model over many GPUs; lmmclf keeps ``--concurrency`` requests in flight and
journals answers as they arrive. Images go as base64 data URLs. 429s, 5xx, timeouts, dropped
connections and unparseable bodies are retried with exponential backoff and full jitter
(``Retry-After`` honoured), up to ``describe.max_retries`` times; then the image is recorded
as failed with the last reason, and retried on the next run.

The API key is read from the environment variable named by ``describe.api_key_env`` and
lives only in the HTTP client's headers: it is never part of a key, an artifact, a journal,
a log line or an error message (every error text is scrubbed of it; tested).
"""

from __future__ import annotations

import base64
import io
import json
import os
import queue
import random
import threading
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any, Iterable, Iterator

from lmmclf.describe.backends.base import Answer, Backend, Job
from lmmclf.errors import ConfigError

BACKOFF_CAP = 60.0  # seconds: the longest wait between two tries
_PASSTHROUGH_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
_BODY_EXCERPT = 200  # characters of an error body quoted in the failure reason


class _Retryable(Exception):
    """A failure worth another try (429, 5xx, timeout, dropped connection, garbled body)."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


class _Rejected(Exception):
    """A failure another immediate try will not fix (4xx, refused or empty answer)."""


def encode_image(path, max_side: int = 0) -> str:
    """A ``data:`` URL of the image: the file's own bytes when the server can read them as is.

    Args:
        path: the image file.
        max_side: downscale so the longer side is at most this (0: never).
    """
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        fmt = image.format
        too_big = max_side and max(image.size) > max_side
        if fmt in _PASSTHROUGH_FORMATS and not too_big:
            data, mime = open(path, "rb").read(), _PASSTHROUGH_FORMATS[fmt]
        else:
            rgb = image.convert("RGB")
            if too_big:
                rgb.thumbnail((max_side, max_side))
            buffer = io.BytesIO()
            rgb.save(buffer, format="PNG")
            data, mime = buffer.getvalue(), "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


class OpenAIBackend(Backend):
    """Chat completions over HTTP with retries and a bounded number of requests in flight.

    Args:
        section: the describe config section (base_url, model, concurrency, timeout, max_retries...).
        prompt: the resolved prompt text.
    """

    name = "openai"

    @classmethod
    def key_parts(cls, section: Any, hashes: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """The served model's name as given (never the URL or the key), and the image downscaling."""
        return {"name": section.model}, {"image_max_side": section.image_max_side}

    def __init__(self, section: Any, prompt: str):
        super().__init__(section, prompt)
        import httpx

        if not section.base_url:
            raise ConfigError("The openai backend needs --base-url (describe.base_url), e.g. http://localhost:8000/v1.")
        if section.concurrency < 1:
            raise ConfigError(f"--concurrency (describe.concurrency) must be at least 1 request in flight; got {section.concurrency}.")
        self._secret = os.environ.get(section.api_key_env) or None
        headers = {"Authorization": f"Bearer {self._secret}"} if self._secret else {}
        self._httpx = httpx
        self._client = httpx.Client(
            base_url=section.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(section.timeout),
            limits=httpx.Limits(max_connections=section.concurrency, max_keepalive_connections=section.concurrency),
        )
        self._pool = _DaemonPool(section.concurrency)
        self._stop = threading.Event()

    @property
    def batch_size(self) -> int:
        return max(1, self.section.concurrency)

    def resolved(self) -> dict[str, Any]:
        return {"concurrency": self.section.concurrency, "max_retries": self.section.max_retries}

    # -- batches and streams -----------------------------------------------------------
    def describe_batch(self, jobs: list[Job]) -> list[Answer]:
        futures = [self._pool.submit(self._describe_one, job) for job in jobs]
        return [future.result() for future in futures]

    def stream(self, jobs: Iterable[Job]) -> Iterator[list[Answer]]:
        """Keep ``concurrency`` requests in flight; yield whatever finished, as it finishes."""
        pending: set[Future] = set()
        source = iter(jobs)
        try:
            while True:
                while len(pending) < self.section.concurrency:
                    job = next(source, None)
                    if job is None:
                        break
                    pending.add(self._pool.submit(self._describe_one, job))
                if not pending:
                    return
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield [future.result() for future in done]
        finally:
            for future in pending:
                future.cancel()

    def close(self) -> None:
        self._stop.set()
        self._pool.shutdown()
        self._client.close()

    # -- one image ---------------------------------------------------------------------
    def _describe_one(self, job: Job) -> Answer:
        try:
            image_url = encode_image(job.path, self.section.image_max_side)
        except Exception as exc:  # noqa: BLE001 - any unreadable image is that image's failure
            return Answer(job.id, None, error=f"unreadable image {job.path}: {type(exc).__name__}: {exc}")
        payload = self._payload(image_url)
        retries = 0
        while True:
            if self._stop.is_set():
                return Answer(job.id, None, error="interrupted", retries=retries)
            try:
                text, tokens = self._request(payload)
                return Answer(job.id, text, generated_tokens=tokens, retries=retries)
            except _Rejected as exc:
                return Answer(job.id, None, error=self._scrub(f"rejected: {exc}"), retries=retries)
            except _Retryable as exc:
                if retries >= self.section.max_retries:
                    reason = f"gave up after {retries + 1} tries: {exc}"
                    return Answer(job.id, None, error=self._scrub(reason), retries=retries)
                self._stop.wait(self._delay(retries, exc.retry_after))
                retries += 1

    def _payload(self, image_url: str) -> dict[str, Any]:
        section = self.section
        payload: dict[str, Any] = {
            "model": section.model,
            "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": image_url}},
                {"type": "text", "text": self.prompt},
            ]}],
            "max_tokens": section.max_new_tokens,
        }
        if section.sample:
            payload.update(temperature=section.temperature, top_p=section.top_p, seed=section.seed)
        else:
            payload.update(temperature=0.0, top_p=1.0)  # greedy
        if section.repetition_penalty != 1.0:
            payload["repetition_penalty"] = section.repetition_penalty  # vLLM/SGLang extension
        return payload

    def _request(self, payload: dict[str, Any]) -> tuple[str, int]:
        httpx = self._httpx
        try:
            response = self._client.post("chat/completions", json=payload)
        except httpx.TransportError as exc:  # timeouts, refused or dropped connections
            raise _Retryable(f"{type(exc).__name__}: {exc}") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Retryable(f"HTTP {status}: {response.text[:_BODY_EXCERPT]}", _retry_after(response))
        if status >= 400:
            raise _Rejected(f"HTTP {status}: {response.text[:_BODY_EXCERPT]}")
        try:
            data = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _Retryable(f"unparseable response body: {response.text[:_BODY_EXCERPT]!r}") from None
        return _answer_text(data)

    def _delay(self, retries: int, retry_after: float | None) -> float:
        """Exponential backoff with full jitter; a server's Retry-After is a lower bound."""
        ceiling = min(BACKOFF_CAP, self.section.retry_backoff * (2 ** retries))
        delay = random.uniform(0.5 * ceiling, ceiling)
        return min(BACKOFF_CAP, max(delay, retry_after or 0.0))

    def _scrub(self, text: str) -> str:
        """Remove the API key from a message, whatever the server echoed back."""
        return text.replace(self._secret, "***") if self._secret else text


class _DaemonPool:
    """A fixed pool of daemon worker threads returning futures.

    Unlike ``ThreadPoolExecutor`` (whose workers the interpreter joins at exit), a Ctrl-C
    never waits here for requests still in flight: they are abandoned, and their images,
    not yet journaled, are simply described again by the next run.
    """

    def __init__(self, workers: int):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"describe-openai-{i}", daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        self._queue.put((future, fn, args))
        return future

    def _work(self) -> None:
        while (task := self._queue.get()) is not None:
            future, fn, args = task
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                future.set_exception(exc)

    def shutdown(self) -> None:
        for _ in self._threads:
            self._queue.put(None)


def _retry_after(response) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except ValueError:
        return None


def _answer_text(data: Any) -> tuple[str, int]:
    """(text, completion tokens) of a chat-completions body; raises :class:`_Rejected` when it has none."""
    try:
        choice = data["choices"][0]
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise _Rejected(f"no answer in the response: {str(data)[:_BODY_EXCERPT]}") from None
    if isinstance(content, list):  # some servers return content parts
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    if choice.get("finish_reason") == "content_filter":
        raise _Rejected("the server's content filter refused the answer")
    if not isinstance(content, str) or not content.strip():
        raise _Rejected("empty answer")
    usage = data.get("usage") or {}
    return content, int(usage.get("completion_tokens") or 0)
