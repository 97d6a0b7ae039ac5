"""The openai backend's API key: read from the environment, checked up front, scrubbed from every text.

The key lives only in the HTTP client's headers. It is checked when the backend is built,
before any request: surrounding whitespace (a ``\\r`` left by a Windows ``.env``, a trailing
newline or space) is stripped, and any other control character or a non-ASCII character is a
:class:`ConfigError` naming the environment variable, never the key: such a key can never go
into an HTTP header, so every request would fail the same way.

:class:`Scrubber` removes the key from any text a server or a library hands back, in every
form a server may echo it (raw, JSON-escaped, ``repr``-escaped, percent-encoded) and any
fragment of :data:`FRAGMENT` or more characters of those forms, so that a key cut by a
truncation, or straddling it, leaks nothing. Scrub first, then cut or format.
"""

from __future__ import annotations

import json
import os
import re
from urllib.parse import quote

from lmmclf.errors import ConfigError

FRAGMENT = 8  # characters: a run of the key this long (or longer) is masked wherever it appears
MASK = "***"


def api_key_from_env(variable: str) -> str | None:
    """The key in ``$variable``, stripped of surrounding whitespace; None when unset or blank.

    Raises:
        ConfigError: the key holds a control or non-ASCII character (the message names the
            variable and the position, never the key).
    """
    key = (os.environ.get(variable) or "").strip()
    for position, char in enumerate(key, start=1):
        if not " " <= char <= "~":  # printable ASCII only: what an HTTP header value may carry
            kind = "a control character" if char < " " or char == "\x7f" else "a non-ASCII character"
            raise ConfigError(
                f"The API key in ${variable} (describe.api_key_env) holds {kind} at position {position} of {len(key)}, "
                "which no HTTP header can carry; export it again without that character.")
    return key or None


class Scrubber:
    """Masks an API key, its escaped forms and their fragments in any text.

    Args:
        secret: the key (None: texts pass through unchanged).
    """

    def __init__(self, secret: str | None):
        self._forms: list[str] = []
        self._grams: re.Pattern | None = None
        if not secret:
            return
        forms = {secret, json.dumps(secret)[1:-1], json.dumps(secret)[1:-1].replace("/", "\\/"),
                 repr(secret)[1:-1], quote(secret, safe="")}
        self._forms = sorted(forms, key=len, reverse=True)
        # every FRAGMENT-long window of every form (a longer fragment is a chain of them), found
        # overlapping by a lookahead: one regex pass, fast enough for a 4 MiB body
        grams = {form[i:i + FRAGMENT] for form in forms for i in range(len(form) - FRAGMENT + 1)}
        if grams:
            self._grams = re.compile("(?=(?:" + "|".join(map(re.escape, sorted(grams))) + "))")

    def __call__(self, text: str) -> str:
        if not self._forms or not text:
            return text
        for form in self._forms:  # whole forms first, including keys shorter than FRAGMENT
            text = text.replace(form, MASK)
        if self._grams is None:
            return text
        spans: list[list[int]] = []  # merged [start, end) of masked runs
        for match in self._grams.finditer(text):
            start = match.start()
            if spans and start <= spans[-1][1]:
                spans[-1][1] = start + FRAGMENT
            else:
                spans.append([start, start + FRAGMENT])
        if not spans:
            return text
        out, done = [], 0
        for start, end in spans:
            out += [text[done:start], MASK]
            done = end
        out.append(text[done:])
        return "".join(out)
