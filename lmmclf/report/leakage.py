"""Label leakage: how often the descriptions of an image name its own class.

A class name is matched as a sequence of whole words, case-insensitively, after splitting
CamelCase, underscores, dashes and any other non-alphanumeric character, with a plural "s"
allowed on its last word: ``ApplyEyeMakeup`` matches "apply eye makeup", ``Jumping_Jack``
matches "two jumping jacks". Descriptions are split into words by the same rule, so a
description that writes "eye-makeup" or "EyeMakeup" matches too, and "makeupbag" does not.

Two numbers come out (:func:`leakage`):

- per class (and overall), the fraction of *described* images (those with at least one
  description that counts) whose descriptions name their class;
- the test-split accuracy of a name-match classifier: each test image the describe artifact
  covers gets the class whose name its descriptions mention most often (a tie goes to the
  class listed first); an image whose descriptions mention no class, or that has none (a
  failed description), counts as wrong.

A high value means much of the text's signal is the label itself: a text or concat method then
beats the image features by reading the class name, not by what else the LMM saw.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

# CamelCase parts: an upper-case run before a capitalised word (the "HTML" of "HTMLParser"),
# a capitalised or lower-case word, an upper-case run, a number
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


def words(text: str) -> list[str]:
    """``text`` as lower-case whole words: split at CamelCase, underscores, dashes, spaces and punctuation."""
    return [word.lower() for word in _WORD.findall(text)]


def name_pattern(class_name: str) -> tuple[str, ...]:
    """The word sequence a class name is matched as (``ApplyEyeMakeup`` -> ``("apply", "eye", "makeup")``)."""
    return tuple(words(class_name))


def count_mentions(pattern: tuple[str, ...], text_words: Sequence[str]) -> int:
    """How many times ``pattern`` occurs in ``text_words`` as whole words (its last word may end in "s")."""
    return NameMatcher([pattern]).counts(text_words)[0]


class NameMatcher:
    """Counts the mentions of many class names in one pass over a text's words.

    Names are looked up by the word they start with, so a description costs one dictionary
    lookup per word whatever the number of classes (UCF-101: 101 names, 133,200 descriptions).
    """

    def __init__(self, patterns: Sequence[tuple[str, ...]]):
        self.patterns = list(patterns)
        self.by_first: dict[str, list[int]] = {}
        for index, pattern in enumerate(self.patterns):
            if not pattern:
                continue
            firsts = (pattern[0], pattern[0] + "s") if len(pattern) == 1 else (pattern[0],)
            for first in firsts:
                self.by_first.setdefault(first, []).append(index)

    def counts(self, text_words: Sequence[str]) -> list[int]:
        """Mentions of each name in ``text_words`` (whole words; a plural "s" on a name's last word)."""
        found = [0] * len(self.patterns)
        for start, word in enumerate(text_words):
            for index in self.by_first.get(word, ()):
                pattern = self.patterns[index]
                end = start + len(pattern)
                if end > len(text_words):
                    continue
                if (tuple(text_words[start:end - 1]) == pattern[:-1]
                        and text_words[end - 1] in (pattern[-1], pattern[-1] + "s")):
                    found[index] += 1
        return found


@dataclass
class Leakage:
    """The leakage numbers (fractions in [0, 1]; None where no image was there to count).

    Args:
        overall: fraction of described images whose descriptions name their class.
        per_class: class name -> that fraction over the class's described images.
        described: class name -> described images of the class.
        name_match_accuracy: test accuracy of the name-match classifier.
        name_match_test_images: the test images it was measured on (those the describe artifact covers).
        named: item id -> whether its descriptions name its class (described images only).
        guessed: item id -> the class index the name-match classifier gives (-1: no class mentioned).
    """

    overall: float | None
    per_class: dict[str, float | None]
    described: dict[str, int]
    name_match_accuracy: float | None
    name_match_test_images: int
    named: dict[str, bool]
    guessed: dict[str, int]

    def to_dict(self) -> dict:
        return {
            "overall": self.overall,
            "per_class": self.per_class,
            "described_images": self.described,
            "name_match_accuracy": self.name_match_accuracy,
            "name_match_test_images": self.name_match_test_images,
        }


def leakage(class_names: Sequence[str], items: Sequence[tuple[str, int, str]], texts: dict[str, list[str]]) -> Leakage:
    """The leakage of the descriptions ``texts`` over ``items``.

    Args:
        class_names: the dataset's classes, in index order.
        items: (id, label, split) of every image the describe artifact covers.
        texts: item id -> its descriptions that count (empty or absent: not described).
    """
    matcher = NameMatcher([name_pattern(name) for name in class_names])
    hits = {name: 0 for name in class_names}
    described = {name: 0 for name in class_names}
    named: dict[str, bool] = {}
    guessed: dict[str, int] = {}
    test_total = test_right = 0
    for item_id, label, split in items:
        descriptions = texts.get(item_id) or []
        counts = [0] * len(class_names)
        for description in descriptions:
            for index, found in enumerate(matcher.counts(words(description))):
                counts[index] += found
        best = max(range(len(counts)), key=lambda i: (counts[i], -i)) if counts else -1
        guess = best if best >= 0 and counts[best] > 0 else -1
        guessed[item_id] = guess
        if descriptions:
            own = class_names[label]
            described[own] += 1
            named[item_id] = counts[label] > 0
            hits[own] += int(named[item_id])
        if split == "test":
            test_total += 1
            test_right += int(guess == label)
    total_described = sum(described.values())
    return Leakage(
        overall=sum(hits.values()) / total_described if total_described else None,
        per_class={name: hits[name] / described[name] if described[name] else None for name in class_names},
        described=described,
        name_match_accuracy=test_right / test_total if test_total else None,
        name_match_test_images=test_total,
        named=named,
        guessed=guessed,
    )
