"""The ``openai`` backend: any OpenAI-compatible chat-completions server (vLLM, SGLang, ...).

This is the scale-out path: a vLLM deployment batches continuously across requests and
spreads the model over many GPUs; lmmclf keeps ``--concurrency`` requests in flight and
journals answers as they arrive. Images go as base64 data URLs of the upright RGB pixels every
stage reads (:func:`encode_image`). 408, 409, 429, 5xx, timeouts,
dropped connections and unparseable bodies are retried with exponential backoff and full
jitter (``Retry-After`` honoured), up to ``describe.max_retries`` times; then the image is
recorded as failed with the last reason, and retried on the next run. What another try cannot
fix is not retried within the run: other 4xx and 3xx answers, a request that cannot be sent,
valid JSON without an answer (see :mod:`.openai_response`), a response over the size cap.

Some failures are the server's or the settings' doing, the same for every image: a field the
server refuses (``transformers serve`` answers 422 "Unexpected fields" to ``repetition_penalty``;
the failure names ``--repetition-penalty 1.0``, which stops sending it), 401/403/404/405, a model
name a server pinned to another model refuses (``transformers serve MODEL`` answers 400 "Server is
pinned to ..."; the failure names ``--model MODEL``), and a 500/501 whose body is the same
:data:`SAME_ERROR_TIMES` times in a row, to several images (``transformers serve`` answers a bare
"Internal Server Error" to a model without a chat template or one it cannot load), which is then
no longer retried. Such answers are marked ``systemic`` and the
runner stops a run that begins with a few of them. ``finish_reason: "length"`` marks an answer
``truncated``. What was sent (sampling fields included) is recorded in the artifact
(``resolved_sent``): a server may ignore sampling fields, so a request is all lmmclf can vouch for.

``describe.timeout`` is a deadline for the whole request, from connecting to the last byte
of the body (:mod:`.deadline`): a server that trickles bytes cannot hold a request longer.
One response body is capped at :data:`MAX_RESPONSE_BYTES`; beyond it lmmclf stops reading and
fails that image with a reason naming the cap.

The API key is read from the environment variable named by ``describe.api_key_env``,
stripped of surrounding whitespace and checked before any request (:mod:`.openai_key`); it
lives only in the HTTP client's headers: it is never part of a key, an artifact, a journal,
a log line or an error message (every text from the server or the HTTP library is scrubbed of
it, and of any 8-character fragment of it, before it is cut or formatted; tested).
"""

from __future__ import annotations

import base64
import io
import math
import queue
import random
import re
import threading
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any, Iterable, Iterator

from lmmclf.describe.backends import deadline
from lmmclf.describe.backends.base import Answer, Backend, Job, unreadable
from lmmclf.describe.backends.openai_key import Scrubber, api_key_from_env
from lmmclf.describe.backends.openai_response import NoAnswer, parse_body, storable
from lmmclf.errors import ConfigError
from lmmclf.image_read import read_image

BACKOFF_CAP = 60.0  # seconds: the longest wait between two tries
# One response body at most. An answer is max_new_tokens tokens of a few bytes each: 32k tokens
# of 16 bytes, JSON-escaped, stay under 3 MiB, while a 4 MiB answer times the dataset is what
# bloated artifacts (two 20 MB answers made an 84 MB one).
MAX_RESPONSE_BYTES = 4 * 2**20
_ERROR_BODY_READ = 64 * 2**10  # bytes of an error body read (only an excerpt is quoted)
_BODY_EXCERPT = 200  # characters of an error body quoted in the failure reason (after scrubbing)
_REASON_MAX = 400  # characters of a failure reason stored (after scrubbing)
_RETRYABLE_STATUS = {408, 409, 429}  # and every 5xx
_PASSTHROUGH_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}


class _Retryable(Exception):
    """A failure worth another try (429, 5xx, timeout, dropped connection, garbled body)."""

    def __init__(self, reason: str, retry_after: float | None = None, status: int = 0):
        super().__init__(reason)
        self.retry_after = retry_after
        self.status = status


class _Rejected(Exception):
    """A failure another immediate try will not fix (4xx, refused, empty or oversized answer).

    ``systemic``: it is the server's or the settings' doing, not the image's (see :func:`_systemic`);
    ``fix``: the command-line words that avoid it, when known.
    """

    def __init__(self, reason: str, systemic: bool = False, fix: tuple[str, ...] = (), answered: bool = False):
        super().__init__(reason)
        self.systemic = systemic
        self.fix = fix
        self.answered = answered  # the model's own answer (a refusal, an empty one): greedy decoding repeats it


# Request fields only some servers accept -> (flag, value) that stops lmmclf sending them.
# `transformers serve` answers 422 "Unexpected fields in the request" to repetition_penalty.
_OPTIONAL_FIELDS = {"repetition_penalty": ("--repetition-penalty", "1.0")}
_SYSTEMIC_STATUS = {401, 403, 404, 405}  # a key, a route or a model name: wrong for every image alike
# `transformers serve MODEL` answers any other model name with 400 {"detail": "Server is pinned to
# 'MODEL'; requested 'NAME'."} (transformers/cli/serving/utils.py, BaseHandler._resolve_model)
_PINNED = re.compile(r"pinned to '([^']+)'")
# 500/501 with the same body this many times in a row, to more than one image, with no success
# between, is the server's setup (e.g. a model without a chat template), not a passing fault: not
# retried further. 502-504 (gateways, overload) stay retried.
SAME_ERROR_TIMES = 4
_DETERMINISTIC_5XX = {500, 501}


def encode_image(path, max_side: int = 0) -> str:
    """A ``data:`` URL of the pixels every stage reads (:mod:`lmmclf.image_read`).

    The file's own bytes go when they already hold those pixels in a format servers take: no
    EXIF orientation to apply, no transparency, not 16-bit (``ReadImage.changed`` is false), and
    not over ``max_side``. Otherwise the upright RGB pixels go as PNG, so the server never
    sees a phone photo sideways, nor decides for itself what a transparent pixel is.

    Args:
        path: the image file.
        max_side: downscale so the longer side is at most this (0: never).

    Raises:
        ImageReadError: the file cannot be read.
    """
    read = read_image(path)
    too_big = max_side and max(read.pixels.size) > max_side
    if read.format in _PASSTHROUGH_FORMATS and not read.changed and not too_big:
        with open(path, "rb") as handle:
            data, mime = handle.read(), _PASSTHROUGH_FORMATS[read.format]
    else:
        rgb = read.pixels
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
    # describe backend options it reads (lmmclf.config, backend=True). Only image_max_side is a key
    # field: the key holds the served model's name (Backend.key_parts), never the URL or the key.
    reads = ("base_url", "api_key_env", "concurrency", "timeout", "max_retries", "retry_backoff", "image_max_side")

    def __init__(self, section: Any, prompt: str):
        super().__init__(section, prompt)
        import httpx

        if not section.base_url:
            raise ConfigError("The openai backend needs --base-url (describe.base_url), e.g. http://localhost:8000/v1.")
        if section.concurrency < 1:
            raise ConfigError(f"--concurrency (describe.concurrency) must be at least 1 request in flight; got {section.concurrency}.")
        _check_base_url(httpx, section.base_url)
        # checked here, before any request: a key no header can carry fails every request alike
        self._secret = api_key_from_env(section.api_key_env)
        self._scrub = Scrubber(self._secret)
        headers = {"Authorization": f"Bearer {self._secret}"} if self._secret else {}
        self._httpx = httpx
        self._served: dict[str, str] | None = None  # GET /v1/models' word on the model (answer_settings)
        self._client = httpx.Client(
            base_url=section.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(section.timeout),
            limits=httpx.Limits(max_connections=section.concurrency, max_keepalive_connections=section.concurrency),
        )
        deadline.install(self._client)
        self._pool = _DaemonPool(section.concurrency)
        self._stop = threading.Event()
        self._same_error: tuple[str, set[str], int] = ("", set(), 0)  # the last 500 body, the images that got it, how often
        self._error_lock = threading.Lock()

    @property
    def batch_size(self) -> int:
        return max(1, self.section.concurrency)

    def answer_settings(self) -> dict[str, str]:
        """What the server says it serves under the model name: ``GET /v1/models``' entry (vLLM's ``root``: the
        checkpoint it loaded, so two quantisations served under one name differ). {} when the server does not say."""
        if self._served is None:
            self._served = {}
            try:
                response = self._client.get("models", timeout=min(30.0, self.section.timeout))
                listed = response.json().get("data") if response.status_code == 200 else None
                entry = next((m for m in listed or [] if isinstance(m, dict) and m.get("id") == self.section.model), None)
            except (self._httpx.HTTPError, ValueError, AttributeError):
                entry = None
            if entry is not None:
                for field_name, setting in (("root", "served_root"), ("quantization", "served_quantization")):
                    if isinstance(entry.get(field_name), str) and entry[field_name]:
                        self._served[setting] = entry[field_name]
        return dict(self._served)

    def resolved(self) -> dict[str, Any]:
        # what was sent, not what was honoured: a server may ignore sampling fields (transformers serve
        # logs that it does), so "sampled" is only ever a claim about the request
        sent = {name: value for name, value in self._payload("").items() if name not in ("model", "messages")}
        return {"concurrency": self.section.concurrency, "max_retries": self.section.max_retries, "sent": sent,
                "sampling": "requested; the server may ignore it" if self.section.sample else "greedy (temperature 0)"}

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
            return Answer(job.id, None, error=self._reason(unreadable(job, exc)))
        payload = self._payload(image_url)
        retries = 0
        while True:
            if self._stop.is_set():
                return Answer(job.id, None, error="interrupted", retries=retries)
            try:
                text, tokens, truncated = self._request(payload)
                self._note_error(job.id, "")
                return Answer(job.id, self._scrub(text), generated_tokens=tokens, retries=retries, truncated=truncated)
            except _Rejected as exc:
                if exc.answered:
                    return Answer(job.id, None, error=str(exc), retries=retries, answered=True)
                return Answer(job.id, None, error=self._reason(f"rejected: {exc}"), retries=retries,
                              systemic=exc.systemic, fix=exc.fix)
            except _Retryable as exc:
                if exc.status in _DETERMINISTIC_5XX and self._note_error(job.id, str(exc)):
                    reason = (f"{exc} (the same answer {SAME_ERROR_TIMES} times in a row, to several images: the server's setup, "
                              "not retried; the server's log says why, e.g. a model it cannot load or one without a chat template)")
                    return Answer(job.id, None, error=self._reason(reason), retries=retries, systemic=True)
                if retries >= self.section.max_retries:
                    reason = f"gave up after {retries + 1} tries: {exc}"
                    return Answer(job.id, None, error=self._reason(reason), retries=retries)
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

    def _request(self, payload: dict[str, Any]) -> tuple[str, int, bool]:
        httpx = self._httpx
        timeout = self.section.timeout
        try:
            with deadline.deadline(timeout), self._client.stream("POST", "chat/completions", json=payload) as response:
                status = response.status_code
                ok = 200 <= status < 300
                body = self._read(response, MAX_RESPONSE_BYTES if ok else _ERROR_BODY_READ, reject_over=ok)
        except httpx.TimeoutException:
            raise _Retryable(f"no complete response within describe.timeout ({timeout:g} s for the whole request)") from None
        except (httpx.LocalProtocolError, httpx.UnsupportedProtocol) as exc:  # the request itself cannot be sent
            raise _Rejected(f"the request cannot be sent: {type(exc).__name__}: {exc}") from None
        except httpx.RequestError as exc:  # refused or dropped connections, garbled transfers
            raise _Retryable(f"{type(exc).__name__}: {exc}") from None
        if not ok:
            detail = f"HTTP {status}: {self._excerpt(body.decode('utf-8', 'replace'))}"
            if status in _RETRYABLE_STATUS or status >= 500:
                raise _Retryable(detail, _retry_after(response), status)
            raise _rejection(status, detail, payload)
        try:
            return parse_body(body)
        except NoAnswer as exc:
            raise _Rejected(str(exc), answered=exc.answered) from None
        except ValueError:
            raise _Retryable(f"unparseable response body: {self._excerpt(body.decode('utf-8', 'replace'))!r}") from None

    def _note_error(self, image: str, error: str) -> bool:
        """Track a 500/501 body across requests ("" for a success); True once it is the server's setup."""
        with self._error_lock:
            last, images, count = self._same_error
            if not error:
                self._same_error = ("", set(), 0)
                return False
            if error != last:
                images, count = set(), 0
            images, count = images | {image}, count + 1
            self._same_error = (error, images, count)
            return count >= SAME_ERROR_TIMES and len(images) > 1

    def _read(self, response, limit: int, reject_over: bool) -> bytes:
        """The body up to ``limit`` bytes; beyond it, a rejection (``reject_over``) or the bytes so far."""
        declared = response.headers.get("content-length", "")
        if reject_over and declared.isdigit() and int(declared) > limit:
            raise _Rejected(_over_cap(limit))
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            if deadline.passed():  # also bounds a trickle where the network backend could not be wrapped
                raise self._httpx.ReadTimeout("the request's deadline passed")
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                if reject_over:
                    raise _Rejected(_over_cap(limit))
                break  # an error body: its start is all that is quoted
        return b"".join(chunks)[:limit]

    def _excerpt(self, text: str) -> str:
        """The start of a server's text, scrubbed of the key *before* it is cut."""
        return self._scrub(text)[:_BODY_EXCERPT]

    def _reason(self, text: str) -> str:
        """A failure reason fit to store and print: scrubbed, then storable, then cut."""
        return storable(self._scrub(text))[:_REASON_MAX]

    def _delay(self, retries: int, retry_after: float | None) -> float:
        """Exponential backoff with full jitter; a server's Retry-After is a lower bound."""
        ceiling = min(BACKOFF_CAP, self.section.retry_backoff * (2 ** retries))
        delay = random.uniform(0.5 * ceiling, ceiling)
        return min(BACKOFF_CAP, max(delay, retry_after or 0.0))


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


def _rejection(status: int, detail: str, payload: dict[str, Any]) -> _Rejected:
    """The failure of a 3xx/4xx answer: systemic when it is the request, not the image, that the server refuses."""
    if 300 <= status < 400:
        return _Rejected(detail + " (redirects are not followed: check --base-url)", systemic=True)
    for name, fix in _OPTIONAL_FIELDS.items():
        if name in payload and name in detail:
            return _Rejected(f"{detail} (the server does not accept {name}; {' '.join(fix)} stops sending it)",
                             systemic=True, fix=fix)
    pinned = _PINNED.search(detail)
    if pinned:  # `transformers serve MODEL` serves that model only, under exactly that name
        return _Rejected(f"{detail} (the server serves only {pinned.group(1)!r}; --model {pinned.group(1)} asks for it)",
                         systemic=True, fix=("--model", pinned.group(1)))
    systemic = status in _SYSTEMIC_STATUS or "unexpected field" in detail.lower()
    return _Rejected(detail, systemic=systemic)


def _retry_after(response) -> float | None:
    try:
        seconds = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _over_cap(limit: int) -> str:
    return (f"the response is larger than the {limit // 2**20} MiB cap on one answer "
            "(far more than describe.max_new_tokens allows); the rest was not read")


def _check_base_url(httpx, base_url: str) -> None:
    """An http(s) URL with a host, or a ConfigError: any other fails every request alike."""
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError):
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(f"--base-url (describe.base_url) must be an http:// or https:// URL such as "
                          f"http://localhost:8000/v1; got {base_url!r}.")
