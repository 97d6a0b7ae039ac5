"""Turn an LMM's answer into a list of descriptions, or a reason why it holds none.

LMMs answer "Give 10 semantic descriptions of the image" in a handful of shapes: a numbered
list ("1." or "1)" or "(1)" or "Description 1:"), a bulleted list ("-", "*", "•"), a list run
together on one line ("1. a man 2. a dog 3. ..."), GPT-style headings with nested bullets,
sometimes after a preamble ("Sure! Here are ...:"), a reasoning block (``<think>...</think>``)
and before a closing remark. docs/describe.md has the table of formats. The rules, in order:

0. Special tokens a server left in (``<|video_pad|>``, ``<|im_end|>``...) and reasoning
   blocks are removed first.
1. Lines that start with a list marker start an item; following unmarked lines continue it;
   a blank line after the list ends it (a closing remark is dropped), and so does an
   unindented unmarked line after a last item that already ends a sentence ("...stadium.\nI
   hope these help!"). Text before the first marker is a preamble and is dropped. A bullet
   under a numbered heading ("1. **Setting**:" then "   - A gym.") belongs to the heading's item.
2. Inside an item, and in an answer with no marked lines, a run-on numbered list is split at
   the *next expected number* only ("2." after "1.", then "3." ...), so "3.5 metres" or
   "in 2020." never split an item.
3. An answer with no markers but several lines gives one description per line (a preamble
   line ending in ":" and bare numbers dropped).
4. Each item is stripped of whitespace, markdown bold and surrounding quotes; empty items are
   dropped; at most K are kept.

:func:`parse_answer` also validates: a refusal, or an answer with no list (one sentence
where K > 1 were asked, a preamble and nothing after it), is an error with a reason. A
*truncated* answer (the token budget ran out) keeps its complete items and drops the cut last one.

Bump :data:`PARSER_VERSION` whenever the output for some input changes. It is not part of the
describe key (:data:`KEY_PARSER_VERSION` stays 1 there, so no parser change re-runs an LMM):
artifacts record the version they were parsed with, and readers re-parse the stored raw
answers when it is older (:func:`needs_reparse`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PARSER_VERSION = 2
# What the describe key holds under "parser_version", frozen: keys made before parsing moved to
# read time keep matching their artifacts (see docs/describe.md, "Parser versions").
KEY_PARSER_VERSION = 1

_MARKED_LINE = re.compile(
    r"^(?P<indent>\s*)(?:(?:(?:description|caption)\s*#?\s*)?(?P<num>\d{1,3})\s*[.):](?!\d)|\((?P<pnum>\d{1,3})\)"
    r"|(?P<bullet>[-*•·●▪‣–])(?=\s))\s*(?P<text>.*)$",
    re.IGNORECASE,
)
_QUOTES = [('"', '"'), ("'", "'"), ("“", "”"), ("‘", "’"), ("«", "»")]
# <|video_pad|>, <|im_end|>, <|eot_id|>...: chat-template tokens a server decoded into the text
_SPECIAL_TOKEN = re.compile(r"<\|[A-Za-z0-9_.:-]{1,40}\|>|</s>|<end_of_turn>|<eos>")
_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.DOTALL | re.IGNORECASE)
_REFUSAL = re.compile(
    r"^\W*(?:I['’]?m sorry|I am sorry|sorry|I apologi[sz]e|I (?:cannot|can['’]?t|can not|won['’]?t|am unable|['’]?m unable"
    r"|am not able|['’]?m not able)|as an AI|unfortunately,? I)\b",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"""[.!?]["'”’)*]*$""")
_BARE_NUMBER = re.compile(r"^\W*\d{1,3}\W*$")
_EXCERPT = 80


@dataclass(frozen=True)
class Parsed:
    """What an answer holds.

    Args:
        descriptions: the descriptions, at most K.
        error: why the answer holds no usable list ("" when it does).
        dropped_cut: a truncated answer's cut last item was dropped.
    """

    descriptions: list[str] = field(default_factory=list)
    error: str = ""
    dropped_cut: bool = False


def needs_reparse(stored_version) -> bool:
    """True when descriptions parsed by parser ``stored_version`` (None: before versions were stored) are stale."""
    try:
        return int(stored_version) < PARSER_VERSION
    except (TypeError, ValueError):
        return True


def parse_descriptions(text: str, k: int) -> list[str]:
    """The descriptions in an answer, at most ``k``, in order, without validation.

    Args:
        text: the raw answer.
        k: the most descriptions to keep.
    """
    items, _, _ = _items(text)
    cleaned = [_clean(item) for item in items]
    return [item for item in cleaned if item][:k]


def parse_answer(text: str, k: int, truncated: bool = False) -> Parsed:
    """The descriptions in an answer, or the reason it has none (refusal, no list, cut too early).

    Args:
        text: the raw answer.
        k: the most descriptions to keep (K, as asked).
        truncated: the answer stopped at the token budget (its last item is cut).
    """
    items, listed, ended = _items(text)
    cleaned = [item for item in (_clean(item) for item in items) if item]
    body = _visible(text).strip()
    if not listed and body and _REFUSAL.match(body):
        return Parsed(error=f"the model refused: {_excerpt(body)}")
    dropped = False
    if truncated and cleaned and not ended and len(cleaned) <= k:
        cleaned, dropped = cleaned[:-1], True  # the last item is where the budget ran out
    if not cleaned:
        if truncated:
            return Parsed(error="the answer was cut by the token budget before its first complete description "
                                "(raise --max-new-tokens, describe.max_new_tokens)")
        if not body:
            return Parsed(error="empty answer" if not text.strip() else "only reasoning (<think>) or special tokens, no answer")
        return Parsed(error=f"no list in the answer: {_excerpt(body)}")
    if not listed and len(cleaned) == 1 and k > 1:
        return Parsed(error=f"no list in the answer (one sentence where {k} descriptions were asked): {_excerpt(body)}")
    return Parsed(descriptions=cleaned[:k], dropped_cut=dropped)


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "..."


def _visible(text: str) -> str:
    """The answer without special tokens and reasoning blocks (an unclosed ``<think>`` runs to the end)."""
    text = _SPECIAL_TOKEN.sub("", (text or "").replace("\r\n", "\n").replace("\r", "\n"))
    text = _THINK.sub("", text)
    if "</think>" in text.lower():  # the template opened the block in the prompt: only its end is here
        text = text[text.lower().rindex("</think>") + len("</think>"):]
    return text


def _items(text: str) -> tuple[list[str], bool, bool]:
    """(raw items, whether they came from a marked list, whether that list ended before the text did)."""
    text = _visible(text)
    marked = _marked_items(text)
    if marked is not None:
        return marked[0], True, marked[1]
    items = _split_inline(text, 1, require_first=True)
    if items is not None:
        return items, True, False
    lines = [line for line in text.split("\n") if line.strip()]
    if len(lines) > 1:
        if lines[0].rstrip().endswith(":"):
            lines = lines[1:]  # "Here are 10 descriptions:" introduces, it does not describe
        return [line for line in lines if not _BARE_NUMBER.match(line)], False, False
    return ([text] if text.strip() else []), False, False


def _marked_items(text: str) -> tuple[list[str], bool] | None:
    """(items of a line-based list, whether it ended before the text), or None when no line carries a marker."""
    items: list[str] = []
    numbers: list[int | None] = []
    ended = False
    blank_run = False
    heading_indent: int | None = None  # indent of the numbered item whose nested bullets we are in
    trailing: list[str] = []  # unindented unmarked lines after the last item: a closing remark, or its continuation
    for line in text.split("\n"):
        match = _MARKED_LINE.match(line)
        if match:
            if ended:
                break  # a second list after a closing remark: keep the first one only
            if trailing:  # more items follow: those lines continued the item before them
                items[-1] += " " + " ".join(trailing)
                trailing = []
            number = match.group("num") or match.group("pnum")
            indent = len(match.group("indent").expandtabs(4))
            body = match.group("text")
            nested = number is None and items and numbers[-1] is not None and (
                indent > (heading_indent or 0) or _clean(items[-1]).endswith(":"))
            if nested:  # "1. **Setting**:" then "   - A gym.": the bullet is the heading's content
                items[-1] = items[-1].rstrip() + " " + body.strip()
            else:
                items.append(body)
                numbers.append(int(number) if number else None)
                heading_indent = indent if number else None
            blank_run = False
        elif items and not ended:
            if not line.strip():
                blank_run = True
            elif blank_run:
                ended = True
            elif not line[:1].isspace() and (trailing or _SENTENCE_END.search(_clean(items[-1]))):
                trailing.append(line.strip())
            else:
                items[-1] += " " + line.strip()
    if not items:
        return None
    if trailing:
        ended = True  # "...in a stadium.\nI hope these help!": the remark after a finished last item
    out: list[str] = []
    for item, number in zip(items, numbers):
        split = _split_inline(item, number + 1, require_first=False) if number is not None else None
        out.extend(split if split is not None else [item])
    return out, ended


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
    # "(2)" as well as "2." and "2)": the opening parenthesis belongs to the marker, not the item before
    match = re.search(rf"\(?(?<![\d.,]){number}\s*[.)](?=\s)\s*", text)
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
