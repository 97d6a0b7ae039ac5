"""Turn an LMM's answer into a list of descriptions.

LMMs answer "Give 10 semantic descriptions of the image" in a handful of shapes: a numbered
list ("1." or "1)" or "(1)"), a bulleted list ("-", "*", "•"), a list run together on one line
("1. a man 2. a dog 3. ..."), sometimes after a preamble ("Sure! Here are ...:") and before a
closing remark. The rules, in order:

1. Lines that start with a list marker start an item; following unmarked lines continue it;
   a blank line after the list ends it (a closing remark is dropped). Text before the first
   marker is a preamble and is dropped.
2. Inside an item, and in an answer with no marked lines, a run-on numbered list is split at
   the *next expected number* only ("2." after "1.", then "3." ...), so "3.5 metres" or
   "in 2020." never split an item.
3. An answer with no list at all gives one description per non-empty line, or the whole
   answer as one description when it is a single line.
4. Each item is stripped of whitespace, markdown bold and surrounding quotes; empty items are
   dropped; at most K are kept.

Change :data:`PARSER_VERSION` whenever the output of :func:`parse_descriptions` changes for
some input: it is part of the describe cache key.
"""

from __future__ import annotations

import re

PARSER_VERSION = 1

_MARKED_LINE = re.compile(
    r"^\s*(?:(?P<num>\d{1,3})\s*[.):](?!\d)|\((?P<pnum>\d{1,3})\)|(?P<bullet>[-*•·●▪‣–])(?=\s))\s*(?P<text>.*)$"
)
_QUOTES = [('"', '"'), ("'", "'"), ("“", "”"), ("‘", "’"), ("«", "»")]


def parse_descriptions(text: str, k: int) -> list[str]:
    """The descriptions in an answer, at most ``k``, in order.

    Args:
        text: the raw answer.
        k: the most descriptions to keep.
    """
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    items = _marked_items(text)
    if items is None:
        items = _split_inline(text, 1, require_first=True)
    if items is None:
        lines = [line for line in text.split("\n") if line.strip()]
        items = lines if len(lines) > 1 else [text]
    cleaned = [_clean(item) for item in items]
    return [item for item in cleaned if item][:k]


def _marked_items(text: str) -> list[str] | None:
    """Items of a line-based list, or None when no line carries a list marker."""
    items: list[str] = []
    numbers: list[int | None] = []
    ended = False
    blank_run = False
    for line in text.split("\n"):
        match = _MARKED_LINE.match(line)
        if match:
            if ended:
                break  # a second list after a closing remark: keep the first one only
            number = match.group("num") or match.group("pnum")
            items.append(match.group("text"))
            numbers.append(int(number) if number else None)
            blank_run = False
        elif items and not ended:
            if not line.strip():
                blank_run = True
            elif blank_run:
                ended = True
            else:
                items[-1] += " " + line.strip()
    if not items:
        return None
    out: list[str] = []
    for item, number in zip(items, numbers):
        split = _split_inline(item, number + 1, require_first=False) if number is not None else None
        out.extend(split if split is not None else [item])
    return out


def _split_inline(text: str, first: int, require_first: bool) -> list[str] | None:
    """Split a run-on list at consecutive numbers starting from ``first``.

    With ``require_first`` the text must contain the marker ``first`` (the list's start; the
    preamble before it is dropped); otherwise ``text`` is the body of item ``first - 1``.
    Returns None when there is nothing to split.
    """
    pieces: list[str] = []
    expected = first
    rest = text
    if require_first:
        start = _find_marker(rest, expected)
        if start is None:
            return None
        rest = rest[start[1]:]
        expected += 1
    while True:
        found = _find_marker(rest, expected)
        if found is None:
            pieces.append(rest)
            break
        pieces.append(rest[: found[0]])
        rest = rest[found[1]:]
        expected += 1
    if require_first and len(pieces) < 2:
        return None  # a lone "1." is not a list
    return pieces if len(pieces) > 1 or require_first else None


def _find_marker(text: str, number: int) -> tuple[int, int] | None:
    """(start, end) of the first "N." / "N)" marker for ``number`` not glued to other digits."""
    match = re.search(rf"(?<![\d.,]){number}\s*[.)](?=\s)\s*", text)
    return (match.start(), match.end()) if match else None


def _clean(item: str) -> str:
    item = item.strip().replace("**", "").replace("__", "").strip()
    changed = True
    while changed and len(item) >= 2:
        changed = False
        for left, right in _QUOTES:
            if item.startswith(left) and item.endswith(right):
                item = item[len(left): len(item) - len(right)].strip()
                changed = True
    return item
