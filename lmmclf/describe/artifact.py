"""The describe artifact: its key, its journal records, and the HDF5 file they become.

Key (:func:`describe_spec`): the dataset identity plus the described subset (split, limit),
the backend, the model identity (hub id + revision or a hash of a local folder for ``hf``; the
served model name for ``openai``), dtype and quantization as configured (``hf``), the prompt
text, K, every decoding parameter that acts (temperature, top-p and seed only when sampling),
and ``parser_version`` frozen at 1 (:data:`~lmmclf.describe.parse.KEY_PARSER_VERSION`: a parser
change takes effect by re-parsing the stored raw answers, never by describing again). Not in the key: device, batch size, concurrency, shard, URL, API key. Which describe fields
enter is declared next to their defaults (``lmmclf.config``); backend options (dtype,
quantization, image size...) enter only for a backend that reads them (``Backend.reads``).

HDF5 layout (stage ``describe``)::

    ids               (N,)   utf-8 str, dataset index order
    descriptions      (N, K) utf-8 str, padded with ""
    num_descriptions  (N,)   int32
    raw               (N,)   utf-8 str, the model's answer
    generated_tokens  (N,)   int32
    ok                (N,)   bool; False rows failed (their reason in ``errors``)
    errors            (N,)   utf-8 str, "" when ok
    truncated         (N,)   bool; the answer hit max_new_tokens (its cut last item dropped).
                             Absent in artifacts written before it: read as all False.
    shapes            (N,)   utf-8 str: ``list``, ``prose``, ``single`` or ``cut`` (ok rows), ""
                             (failed rows). Absent before parser version 3 (re-parsed on read).
    answered          (N,)   bool; the model gave this answer (ok, refused, empty...): under
                             greedy decoding it would give it again, so a failed answered row
                             is asked again only with ``--retry-failed`` (or ``--sample``); a
                             transient failure (no answer: connection, 5xx, a timeout) is
                             retried by the next run. Absent before: derived (an ok row, a
                             failed row with raw text, an empty answer).
    attrs: num_descriptions_requested = K, prompt, backend, model, resolved_*, and
           parser_version: the parser that made ``descriptions`` (readers re-parse ``raw``
           when it is older than :data:`~lmmclf.describe.parse.PARSER_VERSION`)
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from rich.markup import escape

from lmmclf.describe.backends.base import Answer, backend_class, unread_options
from lmmclf.describe.parse import KEY_PARSER_VERSION, PARSER_VERSION, SHAPES, needs_reparse, parse_answer
from lmmclf.describe.prompts import resolve_prompt
from lmmclf.describe.reading import answered_rows, stored_shapes
from lmmclf.errors import CorruptArtifactError, LmmclfError
from lmmclf.filehash import FileHashCache
from lmmclf.stages import command, key_params, version
from lmmclf.store import KeySpec

STAGE = "describe"
STAGE_VERSION = version(STAGE)  # bump it in lmmclf.stages when the content changes for the same key inputs
LAYOUT = ("ids", "descriptions", "num_descriptions", "raw", "generated_tokens", "ok", "errors")
# what a failed row may say about why: an answer the model gave, which greedy decoding repeats
ANSWERED = "answered"


def describe_spec(cfg, dataset, store) -> KeySpec:
    """The key spec of the describe artifact for ``cfg.describe`` on ``dataset``.

    Args:
        cfg: the experiment config.
        dataset: the loaded :class:`~lmmclf.datasets.base.DatasetIndex`.
        store: the artifact store (its file-hash memo speeds up hashing local models).
    """
    section = cfg.describe
    backend = backend_class(section.backend)
    warn_unread_options(section, backend)
    hashes = FileHashCache(store.file_hash_db())
    try:
        model, backend_params = backend.key_parts(section, hashes)
    finally:
        hashes.close()
    # the declared key fields (lmmclf.config), backend options only where this backend reads them
    params: dict[str, Any] = {
        **key_params(cfg, STAGE, reads=backend.reads),
        "prompt": resolve_prompt(section.prompt, section.prompt_preset, section.num_descriptions),
        "limit": effective_limit(dataset, section.split, section.limit),
        "parser_version": KEY_PARSER_VERSION,  # frozen: parsing happens again on read, not by describing again
        **backend_params,
    }
    return KeySpec(stage=STAGE, version=STAGE_VERSION, dataset=dataset.identity(), model=model, params=params)


_warned: set[tuple[str, str]] = set()  # (backend, field) pairs already warned about in this process


def warn_unread_options(section, backend) -> None:
    """Warn, once per process, about each describe option set for a backend that does not read it.

    Such a setting changes nothing (and stays out of the key), which a user who set it should know.
    """
    for name in unread_options(section, backend):
        if (section.backend, name) in _warned:
            continue
        _warned.add((section.backend, name))
        from lmmclf.console import console

        console.print(f"[yellow]Warning[/]: describe.{name} is set, but the {escape(section.backend)} backend does not read it; "
                      "it changes nothing and is not part of the cache key.", soft_wrap=True)


def effective_limit(dataset, split: str, limit: int | None) -> int | None:
    """``limit`` as it enters keys: None when it keeps every item of the split (same content, same key)."""
    if limit is None or limit >= len(dataset.split(split)):
        return None
    return limit


def select_items(dataset, split: str, limit: int | None) -> list:
    """The described subset: the split's items in index order, the first ``limit`` of them.

    Raises:
        LmmclfError: ``limit`` is below 1 (a negative one would silently drop the last items).
    """
    if limit is not None and limit < 1:
        raise LmmclfError(f"--limit (describe.limit) must be a positive number of images; got {limit}.")
    items = dataset.split(split)
    return items[:limit] if limit is not None else items


def answer_record(answer: Answer, k: int) -> dict[str, Any]:
    """The journal record of one answer (descriptions parsed now; an answer with none is a failure).

    NUL characters are dropped from the text: HDF5 strings cannot hold them. An answer of the
    wrong shape (text not a string, a token count that is not a small integer) becomes that
    image's failure, so a backend's surprise never ends the run. A refusal, an empty answer or
    one with only reasoning is a failure with its reason (its raw text kept) marked ``answered``:
    the model's own answer, final under greedy decoding (the runner asks again only with
    ``--retry-failed`` or ``--sample``).
    """
    tokens = _count(answer.generated_tokens)
    retries = _count(answer.retries)
    truncated = answer.truncated is True
    error = answer.error if isinstance(answer.error, str) else repr(answer.error)
    if not error and answer.text is not None and not isinstance(answer.text, str):
        error = f"the answer is not text ({type(answer.text).__name__})"
    text = answer.text.replace("\x00", "") if isinstance(answer.text, str) else ""
    base = {"id": answer.id, "generated_tokens": tokens, "retries": retries, "truncated": truncated}
    if not error and not text.strip():
        return {**base, "ok": False, "error": "empty answer", "answered": True}
    if error and answer.answered is True:
        return {**base, "ok": False, "error": error, ANSWERED: True}
    if error:
        return {**base, "ok": False, "error": error, "systemic": answer.systemic is True}
    return parsed_record({**base, "ok": True, "raw": text}, k)


def parsed_record(record: dict[str, Any], k: int) -> dict[str, Any]:
    """``record`` (one with a ``raw`` answer) with its descriptions and shape from the current parser.

    Parsed under the default answer policy (the stored artifact serves both; ``require_list`` is
    applied by its readers, :mod:`lmmclf.describe.reading`). A raw answer with nothing usable (a
    refusal, only reasoning) makes the record a failure with the parser's reason. Used for new
    answers and, when the artifact is written or read, for rows parsed by an older parser.
    """
    parsed = parse_answer(record["raw"], k, truncated=bool(record.get("truncated")))
    out = {key: value for key, value in record.items() if key not in ("descriptions", "error", "shape")}
    out[ANSWERED] = True
    if parsed.error:
        return {**out, "ok": False, "error": parsed.error}
    return {**out, "ok": True, "descriptions": parsed.descriptions, "shape": parsed.shape}


def reparse(record: dict[str, Any], k: int) -> dict[str, Any]:
    """A record with its raw answer parsed again by the current parser (records without one as they are)."""
    return parsed_record(record, k) if isinstance(record.get("raw"), str) and record.get(ANSWERED, record.get("ok")) else record


_INT32_MAX = 2**31 - 1


def _count(value: Any) -> int:
    """A token or retry count as stored (int32): anything else reads as 0."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _INT32_MAX:
        return 0
    return value


def valid_record(record: Any) -> dict[str, Any] | None:
    """A journal record as the artifact needs it, or None when it cannot be trusted.

    Journals are read back after crashes, full disks and hand edits: a record without a string
    ``id``, whose ``ok`` is not a bool, or (when ok) without a string ``raw`` and a list of string
    ``descriptions`` is dropped, so its item counts as not done and is described again. Counts
    of the wrong type read as 0 (they are statistics, not results).
    """
    if not isinstance(record, dict):
        return None
    item_id, ok = record.get("id"), record.get("ok")
    if not isinstance(item_id, str) or not item_id or not isinstance(ok, bool):
        return None
    clean: dict[str, Any] = {"id": item_id, "ok": ok, "generated_tokens": _count(record.get("generated_tokens")),
                             "retries": _count(record.get("retries")), "truncated": record.get("truncated") is True}
    # a failure that kept its raw text is the model's answer (transient failures never have one)
    if ok or record.get(ANSWERED) is True or (ANSWERED not in record and isinstance(record.get("raw"), str)):
        clean[ANSWERED] = True
    if record.get("shape") in SHAPES:
        clean["shape"] = record["shape"]
    settings = record.get("settings")
    if isinstance(settings, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in settings.items()):
        clean["settings"] = dict(settings)
    if ok:
        raw, descriptions = record.get("raw"), record.get("descriptions")
        if not isinstance(raw, str) or not isinstance(descriptions, list) or not all(isinstance(d, str) for d in descriptions):
            return None
        clean.update(raw=raw, descriptions=descriptions)
    else:
        error = record.get("error")
        clean["error"] = error if isinstance(error, str) and error else "failed (no reason recorded)"
        if isinstance(record.get("raw"), str):  # a refused or list-less answer keeps its text, to read why
            clean["raw"] = record["raw"]
    return clean


def merge_records(sources: Iterable[Iterable[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """id -> record over several journals: a success is final; otherwise the latest failure counts.

    Records that fail :func:`valid_record` are skipped (their item is redone).
    """
    merged: dict[str, dict[str, Any]] = {}
    for records in sources:
        for record in records:
            record = valid_record(record)
            if record is None:
                continue
            current = merged.get(record["id"])
            if current is None or not current["ok"]:
                merged[record["id"]] = record
    return merged


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Every row of an existing artifact as a journal record (failed rows with ``ok=False`` and their reason).

    Rows parsed by an older parser are parsed again from their raw answers, so an answer that
    failed under the old rules (prose, a caption) reads as the success it now is.

    Raises:
        CorruptArtifactError: a dataset of the layout is missing or has the wrong shape.
    """
    import h5py
    import numpy as np

    rows = []
    fix = f"`{command(STAGE)}` with the same options recomputes it"
    try:
        with h5py.File(path, "r") as handle:
            absent = [name for name in LAYOUT if not isinstance(handle.get(name), h5py.Dataset)]
            if absent:
                raise CorruptArtifactError(f"{path} is damaged (no dataset {', '.join(absent)}); {fix}.")
            ids = handle["ids"].asstr()[...]
            ok = handle["ok"][...]
            raw = handle["raw"].asstr()[...]
            descriptions = handle["descriptions"].asstr()[...]
            counts = handle["num_descriptions"][...]
            tokens = handle["generated_tokens"][...]
            errors = handle["errors"].asstr()[...]
            # written before truncation was recorded: nothing was known to be cut
            truncated = handle["truncated"][...] if isinstance(handle.get("truncated"), h5py.Dataset) else np.zeros(len(ids), bool)
            shapes = stored_shapes(handle, len(ids))
            answered = answered_rows(handle, ok, raw, errors)
            stale = needs_reparse(handle.attrs.get("parser_version"))
            settings = stored_settings(handle.attrs)
            k = int(handle.attrs.get("num_descriptions_requested", descriptions.shape[1] if descriptions.ndim == 2 else 0))
    except (OSError, KeyError, ValueError, TypeError, AttributeError) as exc:
        raise CorruptArtifactError(f"{path} is damaged ({str(exc).rstrip('.') or type(exc).__name__}); {fix}.") from exc
    n = len(ids) if ids.ndim == 1 else -1
    if (n < 0 or descriptions.ndim != 2 or len(descriptions) != n or len(shapes) != n
            or any(a.shape != (n,) for a in (ok, raw, counts, tokens, errors, truncated, answered))):
        raise CorruptArtifactError(f"{path} is damaged (its datasets disagree in shape); {fix}.")
    for i, item_id in enumerate(ids):
        base = {"id": item_id, "generated_tokens": int(tokens[i]), "truncated": bool(truncated[i]),
                ANSWERED: bool(answered[i]), **({"settings": settings} if settings else {})}
        if ok[i]:
            row = {**base, "ok": True, "raw": raw[i], "descriptions": list(descriptions[i][: max(int(counts[i]), 0)]),
                   **({"shape": shapes[i]} if shapes[i] else {})}
        else:
            row = {**base, "ok": False, "error": errors[i], **({"raw": raw[i]} if raw[i] else {})}
        rows.append(reparse(row, k) if stale else row)
    return rows


# resolved settings that change answers, as older artifacts recorded them (``resolved_<name>`` attributes)
_LEGACY_SETTINGS = ("dtype", "vision_dtype", "quantize")


def stored_settings(attrs) -> dict[str, str]:
    """The answer-changing resolved settings an artifact's rows were made with ({} when unknown)."""
    raw = attrs.get("answer_settings")
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
    return {name: str(attrs[f"resolved_{name}"]) for name in _LEGACY_SETTINGS if f"resolved_{name}" in attrs}


def common_settings(records: Iterable[dict[str, Any]]) -> dict[str, str]:
    """The settings every answered record that names them agrees on (the runner refuses to mix two)."""
    out: dict[str, str] = {}
    for record in records:
        for name, value in (record.get("settings") or {}).items():
            out.setdefault(name, value)
    return out


def write_artifact(handle, ids: list[str], records: dict[str, dict[str, Any]], k: int, attrs: dict[str, Any]) -> int:
    """Fill an open HDF5 file with the describe layout; returns the row count.

    Args:
        handle: the ``h5py.File`` being written (from ``store.create``).
        ids: the described item ids, in dataset index order.
        records: id -> journal record (every id must have one).
        k: descriptions requested (the width of ``descriptions``).
        attrs: provenance attributes (prompt, backend, resolved device...).
    """
    import h5py
    import numpy as np

    text = h5py.string_dtype("utf-8")
    # rows from an artifact parsed by an older parser are parsed again from their raw answers (milliseconds)
    rows = [reparse(records[item_id], k) for item_id in ids]
    table = np.full((len(ids), k), "", dtype=object)
    for i, row in enumerate(rows):
        for j, description in enumerate((row.get("descriptions") or [])[:k]):
            table[i, j] = _hdf5_text(description)
    handle.create_dataset("ids", data=np.array(ids, dtype=object), dtype=text)
    handle.create_dataset("descriptions", data=table, dtype=text)
    handle.create_dataset("num_descriptions", data=np.array([min(len(r.get("descriptions") or []), k) for r in rows], dtype=np.int32))
    handle.create_dataset("raw", data=np.array([_hdf5_text(r.get("raw") or "") for r in rows], dtype=object), dtype=text)
    handle.create_dataset("generated_tokens", data=np.array([int(r.get("generated_tokens") or 0) for r in rows], dtype=np.int32))
    handle.create_dataset("ok", data=np.array([bool(r.get("ok")) for r in rows], dtype=bool))
    handle.create_dataset("errors", data=np.array([_hdf5_text(r.get("error", "")) if not r.get("ok") else "" for r in rows], dtype=object), dtype=text)
    handle.create_dataset("truncated", data=np.array([bool(r.get("truncated")) for r in rows], dtype=bool))
    handle.create_dataset("shapes", data=np.array([r.get("shape", "") if r.get("ok") else "" for r in rows], dtype=object), dtype=text)
    handle.create_dataset(ANSWERED, data=np.array([bool(r.get(ANSWERED)) for r in rows], dtype=bool))
    handle.attrs["answer_shapes"] = json.dumps(shape_counts(rows))  # for listings: no need to read every row
    handle.attrs["answer_settings"] = json.dumps(common_settings(r for r in rows if r.get(ANSWERED)))
    handle.attrs["num_descriptions_requested"] = int(k)
    handle.attrs["parser_version"] = PARSER_VERSION  # what made ``descriptions`` (the writer re-parses every row)
    for name, value in attrs.items():
        handle.attrs[name] = value if isinstance(value, (str, int, float, bool)) else json.dumps(value)
    return len(ids)


def shape_counts(rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Answers per shape over ``rows`` (ok rows; every shape named, zeros included)."""
    counts = Counter(row.get("shape") for row in rows if row.get("ok"))
    return {shape: counts.get(shape, 0) for shape in SHAPES}


def artifact_shapes(path: Path) -> dict[str, int]:
    """Answers per shape in the describe artifact at ``path`` (from its attribute when the current parser wrote it).

    Raises:
        CorruptArtifactError: the artifact cannot be read.
    """
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            stored = handle.attrs.get("answer_shapes")
            if isinstance(stored, str) and not needs_reparse(handle.attrs.get("parser_version")):
                return json.loads(stored)
    except (OSError, ValueError) as exc:
        raise CorruptArtifactError(f"{path} is damaged ({exc}); `{command(STAGE)}` with the same options recomputes it.") from exc
    return shape_counts(read_rows(path))  # older parser: its rows are parsed again


def _hdf5_text(text: str) -> str:
    """HDF5 strings cannot hold NUL characters (journals written before this rule may have them)."""
    return text.replace("\x00", "")
