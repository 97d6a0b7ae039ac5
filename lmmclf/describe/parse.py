"""Turn an LMM's answer into descriptions, the shape they came in, or a reason why it holds none.

LMMs answer "Give 10 semantic descriptions of the image" in a handful of shapes (docs/describe.md
has the table): a marked list (numbered "1." / "1)" / "(1)" / "Description 1:", bulleted
"-" / "*" / "•", run together on one line, GPT-style headings with nested bullets, after a preamble
and before a closing remark); a paragraph of prose (LLaVA, InstructBLIP); or a one-line caption
(BLIP-2 OPT, PaliGemma). The answer policy keeps what the model said, at most K descriptions:

- ``list``: a marked list gives its items; several unmarked lines of one sentence each give one
  description per line (a preamble line ending in ":" and bare numbers dropped);
- ``prose``: any other answer of several sentences gives its sentences (:func:`split_sentences`
  leaves "Dr.", "e.g.", "3.5 m", ellipses and quotations whole; a leading "Sure!" and a closing
  "I hope this helps!" are dropped);
- ``single``: one sentence or caption gives one description;
- ``cut``: an answer cut by the token budget keeps its complete items or sentences and drops the cut
  last one (it keeps its shape above); one with nothing complete keeps its cut text (CLIP's text
  encoder truncates at 77 tokens anyway) and its shape is ``cut``.

Refusals, empty answers and answers that are only reasoning (``<think>``) or special tokens are
failures with their reason. With ``require_list`` (``describe.require_list``) only ``list`` answers
count; the others are failures that name the shape.

The rules, in order:

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
3. An answer with no markers is read line by line and each line sentence by sentence.
4. Each item is stripped of whitespace, markdown bold and surrounding quotes; empty items are
   dropped; at most K are kept.

Bump :data:`PARSER_VERSION` whenever the output for some input changes. It is not part of the
describe key (:data:`KEY_PARSER_VERSION` stays 1 there, so no parser change re-runs an LMM):
artifacts record the version they were parsed with, and readers re-parse the stored raw
answers when it is older (:func:`needs_reparse`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# 3: the answer policy (prose and captions kept, shapes recorded); 2: reasoning blocks, nested bullets
PARSER_VERSION = 3
# What the describe key holds under "parser_version", frozen: keys made before parsing moved to
# read time keep matching their artifacts (see docs/describe.md, "Parser versions").
KEY_PARSER_VERSION = 1
SHAPES = ("list", "prose", "single", "cut")

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
_SENTENCE_END = re.compile(r"""[.!?…]["'”’)*]*$""")
_BARE_NUMBER = re.compile(r"^\W*\d{1,3}\W*$")
# a sentence boundary candidate: end punctuation, closing quotes or brackets, then white space
_BOUNDARY = re.compile(r"""([.!?]+|…)(["'”’)\]*]*)(\s+)""")
# words whose period does not end a sentence ("Dr. Smith", "e.g. a dog", "approx. 3 m")
_ABBREVIATIONS = frozenset({
    "dr", "mr", "mrs", "ms", "prof", "st", "jr", "sr", "vs", "approx", "no", "nos", "fig", "figs", "cf", "mt", "ft",
    "inc", "ltd", "co", "corp", "lt", "col", "gen", "sgt", "capt", "rev", "hon", "ave", "rd", "vol", "ca", "incl",
})
_INITIALISM = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]")  # e.g, i.e, U.S (the last period is the boundary candidate)
_INTERJECTION = re.compile(r"^\W*(?:sure|certainly|of course|okay|ok|absolutely|alright|great|yes)\W*$", re.IGNORECASE)
_LEADING_CLAUSE = re.compile(r"^\W*(?:sure|certainly|of course|okay|here (?:is|are))\b[^:\n]{0,100}:\s*", re.IGNORECASE)
_CLOSING = re.compile(r"^\W*(?:I hope|hope (?:this|these|that)|let me know|feel free|if you (?:need|have|want|would)|is there anything)\b",
                      re.IGNORECASE)
_EXCERPT = 80


@dataclass(frozen=True)
class Parsed:
    """What an answer holds.

    Args:
        descriptions: the descriptions, at most K.
        error: why the answer holds none that count ("" when it does).
        dropped_cut: a truncated answer's cut last item or sentence was dropped.
        shape: ``list``, ``prose``, ``single`` or ``cut`` (:data:`SHAPES`); for a failure, the
            shape that ``require_list`` refused, else "".
    """

    descriptions: list[str] = field(default_factory=list)
    error: str = ""
    dropped_cut: bool = False
    shape: str = ""


def needs_reparse(stored_version) -> bool:
    """True when descriptions parsed by parser ``stored_version`` (None: before versions were stored) are stale."""
    try:
        return int(stored_version) < PARSER_VERSION
    except (TypeError, ValueError):
        return True


def parse_descriptions(text: str, k: int) -> list[str]:
    """The descriptions in an answer, at most ``k``, in order, without validation (a refusal is text too).

    Args:
        text: the raw answer.
        k: the most descriptions to keep.
    """
    pieces, _, _ = _pieces(_visible(text))
    return [piece for piece in (_clean(p) for p in pieces) if piece][:k]


_WHAT = {"prose": "prose", "single": "a single caption", "cut": "an answer cut before its first complete item"}


def parse_answer(text: str, k: int, truncated: bool = False, require_list: bool = False) -> Parsed:
    """The descriptions in an answer and its shape, or the reason it has none.

    Args:
        text: the raw answer.
        k: the most descriptions to keep (K, as asked).
        truncated: the answer stopped at the token budget (its last item or sentence is cut).
        require_list: only a list counts (``describe.require_list``): prose, a caption or a cut
            answer with nothing complete is a failure naming its shape.
    """
    body = _visible(text).strip()
    if not body:
        return Parsed(error="empty answer" if not (text or "").strip() else "only reasoning (<think>) or special tokens, no answer")
    pieces, shape, ended = _pieces(body)
    if shape != "list" and _REFUSAL.match(body):
        return Parsed(error=f"the model refused: {_excerpt(body)}")
    cleaned = [piece for piece in (_clean(p) for p in pieces) if piece]
    dropped = False
    if truncated and cleaned and not ended and len(cleaned) <= k:
        # where the budget ran out: a list's last item, or a last sentence that has no end
        if shape == "list" or not _SENTENCE_END.search(cleaned[-1]):
            cleaned, dropped, cut = cleaned[:-1], True, cleaned[-1]
            if not cleaned:  # nothing complete: the cut text is still what the model saw
                cleaned, shape, dropped = [cut], "cut", False
    if not cleaned:
        if truncated:
            return Parsed(error="the answer was cut by the token budget before its first description "
                                "(raise --max-new-tokens, describe.max_new_tokens)")
        return Parsed(error=f"no description in the answer: {_excerpt(body)}")
    if require_list and shape != "list":
        return Parsed(error=f"not a list but {_WHAT[shape]}, and describe.require_list is set: {_excerpt(body)}", shape=shape)
    return Parsed(descriptions=cleaned[:k], dropped_cut=dropped, shape=shape)


def split_sentences(text: str) -> list[str]:
    """The sentences of one paragraph, in order, each with its end punctuation.

    A boundary is ".", "!" or "?" (with any closing quotes or brackets) followed by white space and
    a character that is not lower case. Not boundaries: an abbreviation's period ("Dr.", "e.g.",
    "approx.", a single initial), an ellipsis ("..." or "…"), and punctuation inside a double
    quotation ('"Stop. Go back."'); "3.5 m" has no white space after its period.
    """
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        punct, after = match.group(1), match.end()
        if after >= len(text) or text[after].islower():
            continue
        if punct == "…" or ".." in punct:
            continue
        if punct.startswith(".") and _abbreviation(text[start:match.start()]):
            continue
        if _inside_quotes(text[start:match.end(2)]):
            continue
        sentences.append(text[start:match.end(2)].strip())
        start = after
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return [sentence for sentence in sentences if sentence]


def _abbreviation(before: str) -> bool:
    """True when the word that ends ``before`` takes a period without ending a sentence."""
    words = before.split()
    if not words:
        return False
    word = words[-1].lstrip("\"'“‘([")
    return (word.lower() in _ABBREVIATIONS or (len(word) == 1 and word.isalpha() and word.isupper())
            or bool(_INITIALISM.fullmatch(word)))


def _inside_quotes(text: str) -> bool:
    """True when ``text`` ends inside a double quotation (straight or curly)."""
    return text.count('"') % 2 == 1 or text.count("“") > text.count("”")


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


def _pieces(text: str) -> tuple[list[str], str, bool]:
    """(raw pieces, the answer's shape, whether a list ended before the text did)."""
    marked = _marked_items(text)
    if marked is not None:
        return marked[0], "list", marked[1]
    items = _split_inline(text, 1, require_first=True)
    if items is not None:
        return items, "list", False
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        lines = lines[1:]  # "Here are 10 descriptions:" introduces, it does not describe
    lines = [line for line in lines if not _BARE_NUMBER.match(line)]
    sentences = [split_sentences(line) for line in lines]
    if len(lines) > 1 and all(len(found) == 1 for found in sentences):
        return lines, "list", False  # one description per line
    if lines:
        lines[0] = _LEADING_CLAUSE.sub("", lines[0])  # "Sure, here is a description: The image shows..."
        sentences[0] = split_sentences(lines[0])
    pieces = [sentence for found in sentences for sentence in found]
    while pieces and (_INTERJECTION.match(pieces[0]) or pieces[0].endswith(":")) and len(pieces) > 1:
        pieces = pieces[1:]
    while len(pieces) > 1 and _CLOSING.match(pieces[-1]):
        pieces = pieces[:-1]
    return pieces, ("prose" if len(pieces) > 1 else "single"), False


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
