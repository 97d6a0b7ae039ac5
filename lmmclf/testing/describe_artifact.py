"""Write a describe artifact from given descriptions, in the real layout (for tests of later stages).

The content is real data in the real format (what the describe stage writes), so the
``embed`` stage reads it exactly as it reads an LMM's output.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lmmclf.store import ArtifactStore, KeySpec


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
        descriptions: the descriptions of each item (at most ``k``).
        ok: per-item success (default all True).
        errors: per-item error text (default "").
        k: descriptions requested (the width of the padded table).
    """
    import h5py

    text = h5py.string_dtype("utf-8")
    n = len(ids)
    ok = list(ok) if ok is not None else [True] * n
    errors = list(errors) if errors is not None else [""] * n
    table = np.full((n, k), "", dtype=object)
    for row, texts in enumerate(descriptions):
        table[row, : len(texts)] = list(texts)[:k]

    def compute(handle) -> int:
        handle.create_dataset("ids", data=np.asarray(list(ids), dtype=object), dtype=text)
        handle.create_dataset("descriptions", data=table, dtype=text)
        handle.create_dataset("num_descriptions", data=np.asarray([min(len(t), k) for t in descriptions], dtype=np.int32))
        raw = ["\n".join(f"{i + 1}. {t}" for i, t in enumerate(texts)) for texts in descriptions]
        handle.create_dataset("raw", data=np.asarray(raw, dtype=object), dtype=text)
        handle.create_dataset("generated_tokens", data=np.asarray([len(r.split()) for r in raw], dtype=np.int32))
        handle.create_dataset("ok", data=np.asarray(ok, dtype=bool))
        handle.create_dataset("errors", data=np.asarray(errors, dtype=object), dtype=text)
        handle.attrs["num_descriptions_requested"] = k
        return n

    store.ensure(spec, compute)
    return spec.key
