"""Reading one chat-completions body: its answer text and token count, whatever shape it has.

A server may send valid JSON of any shape. Each way it can lack an answer (no ``choices``,
``choices: []``, ``message: null``, a content part whose ``text`` is not a string, ...) is a
:class:`NoAnswer` with a reason, which makes that image's failure, never the run's. It is not
retried within the run (the same server answers the same way) but, like every failure, on
the next run. ``usage`` is bookkeeping: when it is missing or malformed (``"usage": "lots"``,
a non-integer ``completion_tokens``) the answer is kept and its token count is 0.

Answer texts are made storable: a NUL or an unpaired surrogate (which JSON escapes can carry)
cannot go into an HDF5 string, so they become U+FFFD.
"""

from __future__ import annotations

import json
import re
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_MAX_TOKENS = 2**31 - 1  # a larger completion_tokens is not a count


class NoAnswer(Exception):
    """The body holds no usable answer; the message says why.

    ``answered``: the model itself gave no answer (a refusal, an empty message, the content
    filter), which greedy decoding repeats; otherwise the body is malformed (retried next run).
    """

    def __init__(self, reason: str, answered: bool = False):
        super().__init__(reason)
        self.answered = answered


def storable(text: str) -> str:
    """``text`` with NULs and unpaired surrogates replaced by U+FFFD (HDF5 and UTF-8 refuse them)."""
    return _UNSTORABLE.sub("\ufffd", text)


def parse_body(body: bytes) -> tuple[str, int, bool]:
    """(answer text, completion tokens, truncated) of a chat-completions body.

    Raises:
        ValueError: the body is not JSON (a garbled or cut transfer: worth another try).
        NoAnswer: valid JSON that holds no answer.
    """
    try:
        data = json.loads(body)
    except RecursionError:  # pathologically nested: not garbling, a broken server
        raise NoAnswer("the response body nests too deeply to be a chat completion") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from None
    return answer_of(data)


def answer_of(data: Any) -> tuple[str, int, bool]:
    """(answer text, completion tokens, truncated) of a decoded chat-completions body; raises :class:`NoAnswer`.

    ``truncated``: ``finish_reason`` is ``"length"``, the server stopped at ``max_tokens``.
    """
    if not isinstance(data, dict):
        raise NoAnswer(f"the response is a JSON {_kind(data)}, not an object")
    if "choices" not in data and isinstance(data.get("error"), (dict, str)):
        error = data["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise NoAnswer(f"the server answered with an error: {message}")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise NoAnswer("no choices in the response" if choices in (None, []) else f"'choices' is a {_kind(choices)}, not a list")
    choice = choices[0]
    if not isinstance(choice, dict):
        raise NoAnswer(f"choices[0] is a {_kind(choice)}, not an object")
    if choice.get("finish_reason") == "content_filter":
        raise NoAnswer("the server's content filter refused the answer", answered=True)
    message = choice.get("message")
    if not isinstance(message, dict):
        raise NoAnswer("no message in choices[0]" if message is None else f"choices[0].message is a {_kind(message)}")
    content = _content_text(message.get("content"))
    if not content.strip():
        refusal = message.get("refusal")
        raise NoAnswer(f"the model refused: {refusal}" if isinstance(refusal, str) and refusal else "empty answer", answered=True)
    return storable(content), _completion_tokens(data.get("usage")), choice.get("finish_reason") == "length"


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise NoAnswer(f"the message content is a {_kind(content)}, not text")
    texts = []
    for index, part in enumerate(content):  # some servers return content parts
        if not isinstance(part, dict) or part.get("type", "text") != "text":
            continue  # not a text part (an image, audio...): nothing to describe with
        text = part.get("text")
        if not isinstance(text, str):
            raise NoAnswer(f"content part {index} has a {_kind(text)} where its text belongs")
        texts.append(text)
    return "".join(texts)


def _completion_tokens(usage: Any) -> int:
    """The completion token count, or 0 when usage is missing or malformed (it is only bookkeeping)."""
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    if isinstance(tokens, float) and tokens.is_integer():
        tokens = int(tokens)
    if isinstance(tokens, bool) or not isinstance(tokens, int) or not 0 <= tokens <= _MAX_TOKENS:
        return 0
    return tokens


def _kind(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)
