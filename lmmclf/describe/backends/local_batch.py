"""What every backend that runs the LMM in this process shares: one batch of images, end to end.

Each image is prepared on its own (an unreadable one is that image's failure), the prepared
images are generated together, and a GPU out-of-memory error halves the batch, for the rest of
the run too, instead of losing it. A backend supplies ``_prepare(job)`` and ``_generate_batch(items)``
(answer text, generated tokens, truncated per item) and keeps ``_torch`` and ``_batch_size``.
"""

from __future__ import annotations

from typing import Any

from lmmclf.describe.backends.base import Answer, Job, unreadable


class LocalBatching:
    """Mixin for in-process backends (``hf``, ``minigpt4``): ``describe_batch`` with per-image failures and OOM halving."""

    @property
    def batch_size(self) -> int:
        """The current batch size: the configured or automatic one, halved by out-of-memory errors."""
        return self._batch_size

    def _prepare(self, job: Job) -> Any:
        """One image made ready for generation (raises for an unreadable image)."""
        raise NotImplementedError

    def _generate_batch(self, items: list[Any]) -> list[tuple[str, int, bool]]:
        """(answer, generated tokens, truncated) per prepared image, in order."""
        raise NotImplementedError

    def describe_batch(self, jobs: list[Job]) -> list[Answer]:
        answers: dict[str, Answer] = {}
        prepared: list[tuple[Job, Any]] = []
        for job in jobs:
            try:
                prepared.append((job, self._prepare(job)))
            except Exception as exc:  # noqa: BLE001 - any unreadable image is that image's failure
                answers[job.id] = Answer(job.id, None, error=unreadable(job, exc))
        if prepared:
            for (job, _), (text, count, cut) in zip(prepared, self._generate_split([item for _, item in prepared])):
                # cut: no end token within max_new_tokens, so the last item may be unfinished
                answers[job.id] = Answer(job.id, text, generated_tokens=count, truncated=cut)
        return [answers[job.id] for job in jobs]

    def _generate_split(self, items: list[Any]) -> list[tuple[str, int, bool]]:
        """Generate; on GPU out-of-memory halve the batch (for the rest of the run too) and go on."""
        try:
            return self._generate_batch(items)
        except self._torch.OutOfMemoryError:
            if len(items) == 1:
                raise
            self._torch.cuda.empty_cache()
            half = len(items) // 2
            self._batch_size = max(1, min(self._batch_size, half))
            return self._generate_split(items[:half]) + self._generate_split(items[half:])
