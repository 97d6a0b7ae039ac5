"""A local OpenAI-compatible chat-completions server with fault injection, for tests and demos.

It listens on 127.0.0.1 (a free port), answers ``POST /v1/chat/completions`` with a
deterministic numbered list derived from the image's bytes (so shards, resumes and single
runs can be compared), and injects faults on demand:

``500``, ``429`` (with ``Retry-After: 0``), ``timeout`` (answers only after ``slow_seconds``),
``malformed`` (a 200 with a broken JSON body), ``drop`` (closes the connection without an
answer), ``reject`` (a 400), ``empty`` (an empty answer), ``echo_auth`` (a 400 whose body
repeats the request's Authorization header, to prove lmmclf scrubs it), and the hostile ones:

- ``echo_auth_at``: an ``echo_status`` plain-text body with the bare API key starting at
  character ``echo_offset`` (e.g. straddling a 200-character excerpt);
- ``echo_auth_forms``: an ``echo_status`` body holding the key raw, ``repr``- and
  JSON-escaped, and fragments of it;
- ``trickle``: a 200 whose headers come at once and whose body comes one byte every
  ``trickle_interval`` seconds; ``trickle_headers``: the status line and headers that way;
- ``huge``: a valid 200 whose answer is ``huge_bytes`` long, sent without a Content-Length;
- ``odd:<shape>``: a 200 of valid JSON in an unexpected shape, one of :data:`ODD_SHAPES`;
- answers that are not lists, one of :data:`ANSWER_SHAPES` (``answer:<shape>``): a refusal,
  an answer cut by ``max_tokens`` (``finish_reason: "length"``), one cut right after its
  preamble, special tokens left in, a ``<think>`` block, a single sentence, and the shapes the
  supported families give: ``caption`` (BLIP-2 OPT, PaliGemma: one lower-case line), ``paragraph``
  (LLaVA-1.5, InstructBLIP: prose of several sentences), ``qwen_list`` (Qwen2-VL: a numbered
  list with bold headings), ``cut_paragraph`` (prose cut by ``max_tokens`` after two complete
  sentences) and ``cut_early`` (cut inside its first sentence). The texts of the family shapes
  carry the image's digest, so different images give different descriptions.

``accepted_fields`` reproduces ``transformers serve`` (transformers 5.24, read from its source and
checked against the real server): a request with a field outside that set gets HTTP 422
``{"detail": "Unexpected fields in the request: {'repetition_penalty'}"}``;
:data:`TRANSFORMERS_SERVE_FIELDS` is the set it accepts. ``pinned_model`` reproduces ``transformers
serve MODEL``: another model name gets HTTP 400 ``{"detail": "Server is pinned to 'MODEL'; requested
'NAME'."}``. ``500_plain`` is its answer to any exception (no chat template, a model it cannot
load) up to 5.24: a bare text/plain "Internal Server Error"; ``400_no_template`` is what 5.25 answers
for a model without a chat template instead: HTTP 400 ``{"detail": "Cannot use apply_chat_template
because this processor does not have a chat template."}``.

Faults come from a global ``script`` consumed in arrival order, and/or per image (by the
sha256 of the image bytes) for its successive requests. The server is bounded: it stops by
itself after ``lifetime`` seconds or ``max_requests`` requests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable

FAULTS = ("ok", "500", "500_plain", "400_no_template", "429", "timeout", "malformed", "drop", "reject", "empty", "echo_auth",
          "echo_auth_at", "echo_auth_forms", "trickle", "trickle_headers", "huge")


def _with_choice(text: str, **choice: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop", **choice}]}


# ``odd:<name>`` faults: valid JSON a careless client would crash on (text: the normal answer)
ODD_SHAPES: dict[str, Any] = {
    "usage_string": lambda text: {**_with_choice(text), "usage": "lots"},
    "tokens_string": lambda text: {**_with_choice(text), "usage": {"completion_tokens": "many"}},
    "tokens_float": lambda text: {**_with_choice(text), "usage": {"completion_tokens": 12.5}},
    "tokens_huge": lambda text: {**_with_choice(text), "usage": {"completion_tokens": 10**40}},
    "tokens_list": lambda text: {**_with_choice(text), "usage": {"completion_tokens": [1]}},
    "text_int": lambda text: {"choices": [{"message": {"content": [{"type": "text", "text": 5}]}}]},
    "parts_ok": lambda text: {"choices": [{"message": {"content": [{"type": "text", "text": text}, "junk", {"type": "image"}]}}]},
    "no_choices": lambda text: {"id": "x", "object": "chat.completion"},
    "choices_empty": lambda text: {"choices": []},
    "choices_object": lambda text: {"choices": {"0": {"message": {"content": text}}}},
    "choice_null": lambda text: {"choices": [None]},
    "message_null": lambda text: {"choices": [{"message": None}]},
    "message_string": lambda text: {"choices": [{"message": text}]},
    "content_int": lambda text: {"choices": [{"message": {"content": 42}}]},
    "content_null": lambda text: {"choices": [{"message": {"content": None, "refusal": "I cannot help with that"}}]},
    "content_object": lambda text: {"choices": [{"message": {"content": {"text": text}}}]},
    "not_object": lambda text: [text],
    "string_body": lambda text: text,
    "null_body": lambda text: None,
    "error_object": lambda text: {"error": {"message": "model overloaded", "code": 7}},
    "nul_in_text": lambda text: _with_choice(text + "\u0000\ud800 end"),  # json.dumps sends them as \u escapes
    "deep": lambda text: "[" * 100_000 + "]" * 100_000,  # sent raw: nests past any recursion limit
}


# What `transformers serve` (transformers 5.24, checked against the real server in
# tests/test_describe_serve.py) does with a chat-completions request, read from
# transformers/cli/serving/utils.py and chat_completion.py:
# - BaseHandler._validate_request (utils.py:1179-1190): a field outside
#   TransformersCompletionCreateParamsStreaming (openai's CompletionCreateParamsStreaming keys plus
#   generation_config, seed, chat_template_kwargs; chat_completion.py:63-66) is HTTP 422
#   {"detail": "Unexpected fields in the request: {'repetition_penalty'}"}, before the model is
#   loaded; the fields of UNUSED_CHAT_COMPLETION_FIELDS (n, presence_penalty, user...) are accepted,
#   logged once and ignored (chat_completion.py:72-92);
# - BaseHandler._resolve_model (utils.py:1199-1212): a server started with a model (`transformers
#   serve MODEL`) answers any other name with 400 {"detail": "Server is pinned to 'MODEL'; requested 'NAME'."};
# - BaseHandler._build_generation_config (utils.py:1224-1272): temperature 0 turns sampling off,
#   other temperatures and top_p are set on the model's generation config but do_sample is left as
#   that config has it (False unless its generation_config.json says otherwise): transformers logs
#   "`do_sample` is not set to `True`. However, `top_p` is set to `0.9`" and decodes greedily;
#   seed re-seeds torch. A sampled request is not proof of a sampled answer;
# - an exception while serving (a model without a chat template, a model name it cannot load)
#   is Starlette's bare HTTP 500, text/plain "Internal Server Error", the same for every request;
# - answers are decoded with skip_special_tokens=True (utils.py:889, GenerateManager.generate_non_streaming),
#   so only tokens the tokenizer does not mark special (an added token such as "<|video_pad|>") are left in.
TRANSFORMERS_SERVE_FIELDS = frozenset({
    "audio", "chat_template_kwargs", "frequency_penalty", "function_call", "functions", "generation_config",
    "logit_bias", "logprobs", "max_completion_tokens", "max_tokens", "messages", "metadata", "modalities", "model",
    "moderation", "n", "parallel_tool_calls", "prediction", "presence_penalty", "prompt_cache_key",
    "prompt_cache_options", "prompt_cache_retention", "reasoning_effort", "response_format", "safety_identifier",
    "seed", "service_tier", "stop", "store", "stream", "stream_options", "temperature", "tool_choice", "tools",
    "top_logprobs", "top_p", "user", "verbosity", "web_search_options",
})


def _cut(text: str) -> str:
    """``text`` cut in the middle of its last line, as a token budget cuts it."""
    return text[: len(text) - 9]


# ``answer:<name>`` faults: (answer text from the normal one, finish_reason)
ANSWER_SHAPES: dict[str, Any] = {
    "refusal": lambda text: ("I'm sorry, I can't help with that.", "stop"),
    "length": lambda text: (_cut(text), "length"),
    "preamble_only": lambda text: ("Sure! Here are 10 semantic descriptions of the image:\n\n1", "length"),
    "special_tokens": lambda text: (text.replace("\n", "<|video_pad|>\n") + "<|im_end|>", "stop"),
    "think": lambda text: ("<think>The user wants descriptions.\n1. not this\n2. nor this</think>\n" + text, "stop"),
    "sentence": lambda text: ("A scene with some detail.", "stop"),
    "caption": lambda text: (f"a man riding a horse on the beach near {_tag(text)}\n", "stop"),
    "paragraph": lambda text: (_paragraph(text), "stop"),
    "qwen_list": lambda text: ("\n".join(f"{i}. **Aspect {i}**: The scene {_tag(text)} shows detail {i}." for i in range(1, 11)), "stop"),
    "cut_paragraph": lambda text: (_paragraph(text) + " A dog runs beside the hor", "length"),
    "cut_early": lambda text: (f"The image shows a man in a red shirt riding a brown horse past {_tag(text)} al", "length"),
}


def _tag(text: str) -> str:
    """The image's mark in its normal answer (``scene <sha6>``), so family shapes differ per image."""
    found = re.search(r"scene (\w+)", text)
    return f"dune {found.group(1)}" if found else "a dune"


def _paragraph(text: str) -> str:
    return (f"The image shows a man in a red shirt riding a brown horse along a sandy beach by {_tag(text)}. "
            "Waves break behind him under a cloudy sky, e.g. near the pier. Dr. Jones would call it 3.5 m of surf.")


def answer_for(image_sha256: str, prompt: str, k: int = 10) -> str:
    """The deterministic answer for an image: a preamble and 3..k numbered descriptions."""
    count = 3 + int(image_sha256[:2], 16) % max(1, k - 2)
    lines = [f"{i}. a scene {image_sha256[:6]} with detail {i}" for i in range(1, count + 1)]
    return "Sure! Here are the descriptions:\n" + "\n".join(lines)


class FakeOpenAIServer:
    """A chat-completions server in a background thread.

    Args:
        script: fault kinds for the first requests, in arrival order (then ``ok``).
        per_image: image sha256 -> fault kinds for that image's successive requests.
        slow_seconds: how long a ``timeout`` fault waits before answering.
        lifetime: seconds after which the server shuts itself down.
        max_requests: requests after which it shuts itself down.
        k: how many descriptions the longest answers have.
        echo_offset: where ``echo_auth_at`` puts the key in its body (characters).
        echo_status: the HTTP status of the ``echo_auth_at`` and ``echo_auth_forms`` answers.
        trickle_interval: seconds between two bytes of a ``trickle`` or ``trickle_headers`` answer.
        huge_bytes: the length of a ``huge`` answer's text.
        accepted_fields: when set, requests with other fields get 422 as ``transformers serve`` does.
        pinned_model: when set, requests for another model get 400 as ``transformers serve MODEL`` answers them.
        served_models: what ``GET /v1/models`` lists, served name -> the entry's other fields (vLLM gives
            ``{"root": "<the checkpoint it loaded>"}``); None: that route answers 404, as some servers do.
    """

    def __init__(self, script: Iterable[str] = (), per_image: dict[str, list[str]] | None = None,
                 slow_seconds: float = 2.0, lifetime: float = 120.0, max_requests: int = 10_000, k: int = 10,
                 echo_offset: int = 0, echo_status: int = 400, trickle_interval: float = 0.5,
                 huge_bytes: int = 8 * 2**20, accepted_fields: Iterable[str] | None = None,
                 pinned_model: str | None = None, served_models: dict[str, dict] | None = None):
        for fault in [*script, *(f for faults in (per_image or {}).values() for f in faults)]:
            if fault not in FAULTS and fault.removeprefix("odd:") not in ODD_SHAPES and fault.removeprefix("answer:") not in ANSWER_SHAPES:
                known = [*FAULTS, *(f"odd:{name}" for name in ODD_SHAPES), *(f"answer:{name}" for name in ANSWER_SHAPES)]
                raise ValueError(f"unknown fault {fault!r} (known: {', '.join(known)})")
        self.echo_offset = echo_offset
        self.echo_status = echo_status
        self.trickle_interval = trickle_interval
        self.huge_bytes = huge_bytes
        self.accepted_fields = frozenset(accepted_fields) if accepted_fields is not None else None
        self.pinned_model = pinned_model
        self.served_models = served_models
        self._lock = threading.Lock()
        self._script = list(script)
        self._per_image = {sha: list(faults) for sha, faults in (per_image or {}).items()}
        self.slow_seconds = slow_seconds
        self.lifetime = lifetime
        self.max_requests = max_requests
        self.k = k
        self.requests: list[dict[str, Any]] = []  # one entry per request: image (digest, size), fault, headers seen
        self.seen_per_image: dict[str, int] = defaultdict(int)
        self._stopped = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-openai", daemon=True)
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True

    @property
    def url(self) -> str:
        """The base URL to pass as ``--base-url``."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> "FakeOpenAIServer":
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._timer.cancel()
        threading.Thread(target=self._httpd.shutdown, daemon=True).start()  # safe from a handler thread too
        self._httpd.server_close()

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def next_fault(self, image_sha: str) -> str:
        """The fault for this request (the global script first, then the image's own plan)."""
        with self._lock:
            self.seen_per_image[image_sha] += 1
            if len(self.requests) >= self.max_requests:
                threading.Thread(target=self.stop, daemon=True).start()
            if self._script:
                return self._script.pop(0)
            plan = self._per_image.get(image_sha)
            if plan:
                return plan.pop(0)
            return "ok"

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(entry)


def image_sha256_of_data_url(url: str) -> str:
    """sha256 of the bytes inside a ``data:...;base64,`` URL (what the per-image plans key on)."""
    return hashlib.sha256(base64.b64decode(url.split(",", 1)[1])).hexdigest()


def image_size_of_data_url(url: str) -> tuple[int, int] | None:
    """(width, height) of the image inside a ``data:`` URL as a server decodes it, or None if it is none."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as image:
            return image.size
    except (OSError, ValueError, IndexError):
        return None


def _handler_for(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if not self.path.rstrip("/").endswith("/models") or server.served_models is None:
                return self._send(404, {"error": {"message": f"no route {self.path}"}})
            listed = [{"id": name, "object": "model", **fields} for name, fields in server.served_models.items()]
            return self._send(200, {"object": "list", "data": listed})

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            if not self.path.rstrip("/").endswith("/chat/completions"):
                return self._send(404, {"error": {"message": f"no route {self.path}"}})
            try:
                request = json.loads(body)
                content = request["messages"][0]["content"]
                url = next(part["image_url"]["url"] for part in content if part["type"] == "image_url")
                prompt = next(part["text"] for part in content if part["type"] == "text")
            except (ValueError, KeyError, IndexError, StopIteration, TypeError):
                return self._send(400, {"error": {"message": "malformed request"}})
            sha = image_sha256_of_data_url(url)
            unexpected = sorted(set(request) - server.accepted_fields) if server.accepted_fields is not None else []
            if unexpected:  # transformers serve validates fields before anything else
                server.record({"image": sha, "fault": "422", "fields": sorted(request)})
                return self._send(422, {"detail": f"Unexpected fields in the request: {set(unexpected)}"})
            if server.pinned_model is not None and request.get("model") not in (None, server.pinned_model):
                server.record({"image": sha, "fault": "400", "fields": sorted(request)})
                return self._send(400, {"detail": f"Server is pinned to '{server.pinned_model}'; requested '{request.get('model')}'."})
            fault = server.next_fault(sha)
            auth = self.headers.get("authorization", "")
            server.record({"image": sha, "image_size": image_size_of_data_url(url), "fault": fault, "authorization": auth, "model": request.get("model"),
                           "max_tokens": request.get("max_tokens"), "temperature": request.get("temperature"),
                           "fields": sorted(request)})
            if fault.startswith("answer:"):
                text, finish = ANSWER_SHAPES[fault.removeprefix("answer:")](answer_for(sha, prompt, server.k))
                return self._send(200, _with_choice(text, finish_reason=finish))
            if fault.startswith("odd:"):
                return self._fault_odd(fault.removeprefix("odd:"), answer_for(sha, prompt, server.k))
            getattr(self, f"_fault_{fault}")(sha, prompt, request, auth)

        # -- the faults --------------------------------------------------------------
        def _fault_ok(self, sha, prompt, request, auth) -> None:
            text = answer_for(sha, prompt, server.k)
            self._send(200, {
                "id": "chatcmpl-fake", "object": "chat.completion", "model": request.get("model"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 600, "completion_tokens": len(text.split()), "total_tokens": 600 + len(text.split())},
            })

        def _fault_500(self, *args) -> None:
            self._send(500, {"error": {"message": "internal error (injected)"}})

        def _fault_500_plain(self, *args) -> None:  # Starlette's answer to an unhandled exception
            self._send_raw(500, b"Internal Server Error", "text/plain; charset=utf-8")

        def _fault_400_no_template(self, *args) -> None:  # transformers serve 5.25, a model without a chat template
            self._send(400, {"detail": "Cannot use apply_chat_template because this processor does not have a chat template."})

        def _fault_429(self, *args) -> None:
            self._send(429, {"error": {"message": "rate limited (injected)"}}, {"Retry-After": "0"})

        def _fault_timeout(self, *args) -> None:
            server._stopped.wait(server.slow_seconds)
            try:
                self._fault_ok(*args)
            except OSError:
                pass  # the client gave up first, as intended

        def _fault_malformed(self, *args) -> None:
            self._send_raw(200, b'{"choices": [{"message": {"content": "1. half', "application/json")

        def _fault_drop(self, *args) -> None:
            self.close_connection = True  # no status line, no body: the client sees a dropped connection

        def _fault_reject(self, *args) -> None:
            self._send(400, {"error": {"message": "image rejected (injected)"}})

        def _fault_empty(self, sha, prompt, request, auth) -> None:
            self._send(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}]})

        def _fault_echo_auth(self, sha, prompt, request, auth) -> None:
            self._send(400, {"error": {"message": f"bad request; you sent authorization={auth}"}})

        def _fault_echo_auth_at(self, sha, prompt, request, auth) -> None:
            key = auth.removeprefix("Bearer ")
            text = "." * server.echo_offset + key + " was rejected; check your key."
            self._send_raw(server.echo_status, text.encode("utf-8"), "text/plain")

        def _fault_echo_auth_forms(self, sha, prompt, request, auth) -> None:
            key = auth.removeprefix("Bearer ")
            forms = {"header": auth, "repr": repr(auth), "json": json.dumps(auth), "prefix": key[:12],
                     "suffix": key[-12:], "middle": key[4:16], "bytes": repr(auth.encode() + b"\r")}
            self._send(server.echo_status, {"error": {"message": "denied", "echo": forms}})

        def _fault_trickle(self, sha, prompt, request, auth) -> None:
            text = answer_for(sha, prompt, server.k)
            body = json.dumps(_with_choice(text)).encode("utf-8")
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.flush()
                self._trickle(body)
            except OSError:
                pass  # the client gave up, as intended

        def _fault_trickle_headers(self, sha, prompt, request, auth) -> None:
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: " + b"z" * 10_000 + b"\r\n\r\n"
            self.close_connection = True
            try:
                self._trickle(head)
            except OSError:
                pass

        def _trickle(self, data: bytes) -> None:
            for i in range(len(data)):
                if server._stopped.wait(server.trickle_interval):
                    return
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()

        def _fault_huge(self, sha, prompt, request, auth) -> None:
            head = json.dumps(_with_choice("@@"))
            before, after = head.split("@@")
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Connection", "close")  # no Content-Length: the body ends when the connection does
            self.end_headers()
            self.close_connection = True
            try:
                self.wfile.write(before.encode())
                chunk = b"1. a huge answer " * 4096
                for _ in range(0, server.huge_bytes, len(chunk)):
                    self.wfile.write(chunk)
                self.wfile.write(after.encode())
            except OSError:
                pass  # the client stopped reading, as intended

        def _fault_odd(self, shape: str, text: str) -> None:
            payload = ODD_SHAPES[shape](text)
            if shape == "deep":
                return self._send_raw(200, payload.encode(), "application/json")
            self._send(200, payload)

        # -- plumbing ----------------------------------------------------------------
        def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            self._send_raw(status, json.dumps(payload).encode("utf-8"), "application/json", headers)

        def _send_raw(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler


def main() -> None:
    """Run the server in the foreground (for trying the openai backend without a GPU)."""
    import argparse
    import time

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lifetime", type=float, default=600.0, help="seconds before it stops by itself")
    args = parser.parse_args()
    with FakeOpenAIServer(lifetime=args.lifetime) as server:
        print(server.url, flush=True)
        while not server._stopped.is_set():
            time.sleep(0.2)


if __name__ == "__main__":
    main()
