"""What later stages read from a describe artifact: the descriptions that count, and their digest.

A describe artifact stores every raw answer with what the parser made of it (descriptions and
the answer's shape). What a later stage uses depends on two things the artifact does not fix:

- the parser in effect: rows parsed by an older parser (the ``parser_version`` attribute) are
  parsed again from ``raw`` here, so images that failed under old rules become usable with no
  LMM rerun;
- the answer policy: with ``describe.require_list`` only rows whose shape is ``list`` count.

:func:`descriptions_digest` hashes exactly what :func:`read_descriptions` returns. The
text-embedding key holds it (``lmmclf.embed.specs``), so text embeddings and everything made
from them rebuild exactly when the descriptions they read change (a retry filled in failed
images, a forced run, a parser change, the other policy) and never otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmmclf.describe.parse import needs_reparse, parse_answer
from lmmclf.hashing import hash_strings

DIGEST_VERSION = "lmmclf-descriptions/1"


@dataclass
class Descriptions:
    """What the text stage reads from a describe artifact.

    Args:
        ids: item ids in the artifact's order.
        texts: ``texts[i]`` is the list of valid descriptions of item ``i`` (maybe empty).
        capacity: K, the number of descriptions requested (the width of the stored arrays).
    """

    ids: list[str]
    texts: list[list[str]]
    capacity: int


def _strings(values) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def stored_shapes(handle: Any, n: int) -> list[str]:
    """The ``shapes`` column of an open describe artifact ("" for every row of one written before shapes)."""
    return _strings(handle["shapes"][()]) if "shapes" in handle else [""] * n


def answered_rows(handle: Any, ok: np.ndarray, raw: list[str], errors: list[str]) -> np.ndarray:
    """Which rows hold an answer the model gave (ok or not), as opposed to a transient failure.

    Artifacts written before the ``answered`` column: an ok row, a failed row that kept its raw
    text (a refusal, no list), or an empty answer.
    """
    if "answered" in handle:
        return handle["answered"][()].astype(bool)
    return np.array([bool(good) or bool(text) or error == "empty answer" for good, text, error in zip(ok, raw, errors)], dtype=bool)


def read_descriptions(handle: Any, require_list: bool = False) -> Descriptions:
    """The descriptions of a describe artifact (an open ``h5py.File``) that count under the policy.

    Description ``k`` of image ``i`` counts when the row holds a usable answer, ``k <
    num_descriptions`` and the text is not empty; with ``require_list``, only rows whose answer
    was a list. Rows parsed by an older parser are parsed again from their raw answers (also the
    failed ones that kept their answer: the new rules may find descriptions in them).

    Args:
        handle: the describe artifact (layout in :mod:`lmmclf.describe.artifact`).
        require_list: ``describe.require_list``: only list answers count.
    """
    ids = _strings(handle["ids"][()])
    table = handle["descriptions"][()]
    capacity = int(handle.attrs.get("num_descriptions_requested", table.shape[1] if table.ndim == 2 else 0))
    capacity = max(capacity, table.shape[1] if table.ndim == 2 else 0)
    ok = handle["ok"][()].astype(bool)
    if needs_reparse(handle.attrs.get("parser_version")):
        raw = _strings(handle["raw"][()])
        cut = handle["truncated"][()] if "truncated" in handle else np.zeros(len(ids), dtype=bool)
        answered = answered_rows(handle, ok, raw, _strings(handle["errors"][()]))
        k = int(handle.attrs.get("num_descriptions_requested", capacity))
        texts = []
        for i in range(len(ids)):
            parsed = parse_answer(raw[i], k, bool(cut[i]), require_list=require_list) if answered[i] else None
            texts.append(list(parsed.descriptions) if parsed is not None else [])
        return Descriptions(ids=ids, texts=texts, capacity=capacity)
    counts = handle["num_descriptions"][()]
    shapes = stored_shapes(handle, len(ids))
    texts = []
    for row, count, good, shape in zip(table, counts, ok, shapes):
        usable = good and (not require_list or shape == "list")
        texts.append([t for t in _strings(row[: int(count)]) if t.strip()] if usable else [])
    return Descriptions(ids=ids, texts=texts, capacity=capacity)


def descriptions_digest(descriptions: Descriptions) -> str:
    """sha256 over K and each item's id and descriptions, in order: what the text stage embeds."""
    parts = [DIGEST_VERSION, str(descriptions.capacity)]
    for item_id, texts in zip(descriptions.ids, descriptions.texts):
        parts.extend((item_id, str(len(texts)), *texts))
    return hash_strings(parts)


_memo: dict[tuple[str, int, int, bool], str] = {}  # (path, mtime_ns, size, require_list) -> digest, per process


def artifact_digest(path: Path, require_list: bool = False) -> str:
    """:func:`descriptions_digest` of the describe artifact at ``path``, remembered per file state.

    Artifacts are replaced, never edited, so (path, mtime, size) names one content; key
    computations ask for this several times per command, and re-parsing is the slow part.
    """
    import h5py

    stat = Path(path).stat()
    memo_key = (str(path), stat.st_mtime_ns, stat.st_size, require_list)
    if memo_key not in _memo:
        with h5py.File(path, "r") as handle:
            _memo[memo_key] = descriptions_digest(read_descriptions(handle, require_list))
    return _memo[memo_key]
