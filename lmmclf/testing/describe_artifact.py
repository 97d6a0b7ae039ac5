"""Write a describe artifact from given descriptions, through the describe stage's own writer.

Tests of later stages (embed, prototypes, probe, finetune) need descriptions without running
an LMM. They get them here as journal records, checked by the stage's
:func:`~lmmclf.describe.artifact.valid_record` and written by its
:func:`~lmmclf.describe.artifact.write_artifact` into the store: there is no second copy of
the layout, so a change to the format cannot pass the tests while breaking users' artifacts.
"""

from __future__ import annotations

from typing import Sequence

from lmmclf.describe import artifact
from lmmclf.describe.parse import PARSER_VERSION
from lmmclf.store import ArtifactStore, KeySpec


def describe_records(
    ids: Sequence[str],
    descriptions: Sequence[Sequence[str]],
    ok: Sequence[bool] | None = None,
    errors: Sequence[str] | None = None,
) -> dict[str, dict]:
    """id -> the journal record the describe stage would have made for these descriptions.

    Raises:
        ValueError: a record the stage itself would reject (a test that builds a bad one).
    """
    n = len(ids)
    ok = list(ok) if ok is not None else [True] * n
    errors = list(errors) if errors is not None else [""] * n
    records = {}
    for item_id, texts, success, error in zip(ids, descriptions, ok, errors):
        raw = "\n".join(f"{i + 1}. {t}" for i, t in enumerate(texts))
        record = (
            {"id": item_id, "ok": True, "raw": raw, "descriptions": list(texts), "generated_tokens": len(raw.split())}
            if success else {"id": item_id, "ok": False, "error": error or "failed", "generated_tokens": 0}
        )
        checked = artifact.valid_record(record)
        if checked is None:
            raise ValueError(f"the describe stage would reject the record of {item_id!r}: {record}")
        records[item_id] = checked
    return records


def write_describe_artifact(
    store: ArtifactStore,
    spec: KeySpec,
    ids: Sequence[str],
    descriptions: Sequence[Sequence[str]],
    ok: Sequence[bool] | None = None,
    errors: Sequence[str] | None = None,
    k: int = 10,
) -> str:
    """Store a describe artifact under ``spec`` and return its key.

    Args:
        store: the artifact store.
        spec: the key spec (stage ``"describe"``).
        ids: item ids in dataset order.
        descriptions: the descriptions of each item (at most ``k`` are kept, as the stage keeps them).
        ok: per-item success (default all True).
        errors: per-item error text of failed items.
        k: descriptions requested (the width of the padded table).
    """
    records = describe_records(ids, descriptions, ok, errors)
    attrs = {  # what the stage records, with this module named as the "backend"
        "prompt": str(spec.params.get("prompt", "")),
        "backend": str(spec.params.get("backend", "lmmclf.testing")),
        "model": str((spec.model or {}).get("name", "")),
        "parser_version": PARSER_VERSION,
    }
    store.ensure(spec, lambda handle: artifact.write_artifact(handle, list(ids), records, k, attrs))
    return spec.key
