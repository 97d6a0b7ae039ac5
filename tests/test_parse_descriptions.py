"""The description parser on real-looking LMM answers."""

from __future__ import annotations

import pytest

from lmmclf.describe.parse import parse_descriptions
from lmmclf.describe.prompts import PRESETS, resolve_prompt
from lmmclf.errors import ConfigError

# MiniGPT-4's answer in the paper's Fig. 9, as a real numbered list.
PAPER_ANSWER = "\n".join(
    f"{i}. A man walking his dog on a {place}."
    for i, place in enumerate(
        ["dirt road in the woods", "trail in the fall", "path in the forest", "sunny day", "trail in autumn",
         "path in the woods", "trail in fall foliage", "forest trail", "sunny fall day", "forest path"], start=1
    )
)


def test_numbered_list_of_ten():
    got = parse_descriptions(PAPER_ANSWER, 10)
    assert len(got) == 10
    assert got[0] == "A man walking his dog on a dirt road in the woods."
    assert got[9] == "A man walking his dog on a forest path."


def test_preamble_and_closing_remark_are_dropped():
    text = "Sure! Here are 3 semantic descriptions of the image:\n\n1. A bowling alley\n2. A man throwing a ball\n3. Pins at the end\n\nI hope these help!"
    assert parse_descriptions(text, 10) == ["A bowling alley", "A man throwing a ball", "Pins at the end"]


@pytest.mark.parametrize("marker", ["{i})", "({i})", "{i}:", "{i} ."])
def test_other_number_styles(marker):
    text = "\n".join(f"{marker.format(i=i)} item {i}" for i in range(1, 4))
    assert parse_descriptions(text, 10) == ["item 1", "item 2", "item 3"]


@pytest.mark.parametrize("bullet", ["-", "*", "•"])
def test_bullets(bullet):
    text = f"Descriptions:\n{bullet} a red car\n{bullet} a wet road\n{bullet}   a city at night  "
    assert parse_descriptions(text, 10) == ["a red car", "a wet road", "a city at night"]


def test_inline_run_on_list_including_the_papers_glued_numbers():
    assert parse_descriptions("1. a 2. b 3. c", 10) == ["a", "b", "c"]
    glued = "1. A female athlete performing a pole vault2. The athlete is in the air3. A stadium"
    assert parse_descriptions(glued, 10) == ["A female athlete performing a pole vault", "The athlete is in the air", "A stadium"]


def test_numbers_inside_items_do_not_split():
    text = "1. A pole 3.5 metres high 2. Taken in 2020. at dusk 3. Score 10. points"
    assert parse_descriptions(text, 10) == ["A pole 3.5 metres high", "Taken in 2020. at dusk", "Score 10. points"]


def test_continuation_lines_join_their_item():
    assert parse_descriptions("1. A man\n   walking a dog\n2. A forest", 10) == ["A man walking a dog", "A forest"]


def test_quotes_bold_and_empty_items_are_stripped():
    text = '1. "A quoted one"\n2. **A bold one**\n3.\n4. “Curly”\n5. \'single\''
    assert parse_descriptions(text, 10) == ["A quoted one", "A bold one", "Curly", "single"]


def test_fewer_than_k_and_more_than_k():
    assert parse_descriptions("1. a\n2. b\n3. c", 10) == ["a", "b", "c"]
    long = "\n".join(f"{i}. item {i}" for i in range(1, 16))
    assert parse_descriptions(long, 10) == [f"item {i}" for i in range(1, 11)]


def test_no_list_falls_back_to_lines_or_whole_answer():
    assert parse_descriptions("  A single sentence about a dog.  ", 10) == ["A single sentence about a dog."]
    assert parse_descriptions("A dog\nA park\n\nA ball", 10) == ["A dog", "A park", "A ball"]
    assert parse_descriptions("", 10) == []
    assert parse_descriptions("   \n ", 10) == []


def test_a_lone_number_is_not_a_list():
    assert parse_descriptions("There is 1. dog here", 10) == ["There is 1. dog here"]


def test_presets_substitute_k_and_free_prompt_wins():
    assert resolve_prompt(None, "paper", 10) == "Give 10 semantic descriptions of the image"
    assert resolve_prompt(None, "paper", 5) == "Give 5 semantic descriptions of the image"
    assert resolve_prompt(None, "emotions", 10) == "Give 10 emotions that the image elicits"
    assert resolve_prompt("Describe it in {k} ways", "paper", 3) == "Describe it in 3 ways"
    assert set(PRESETS) >= {"paper", "emotions"}
    with pytest.raises(ConfigError, match="prompt_preset"):
        resolve_prompt(None, "nope", 10)
