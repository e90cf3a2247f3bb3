"""Blocklist entries and matching: terms as whole words (anywhere in unsegmented scripts),
phrases, regexes, categories, and the evasions the normalization undoes."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagegate.moderation.automaton import Automaton
from imagegate.moderation.blocklist import Blocklist, BlocklistError, parse_entries
from imagegate.moderation.text import normalize_text


def matcher(*entries: str) -> Blocklist:
    return Blocklist(parse_entries(entries, "config"))


def hit(blocklist: Blocklist, prompt: str) -> str | None:
    rule = blocklist.find(normalize_text(prompt))
    return None if rule is None else rule.entry


BASIC = matcher("forbidden", "red panda", "炸弹", "re:\\bkill(ed|ing)?\\b")


@pytest.mark.parametrize(("prompt", "entry"), [
    ("a forbidden castle", "forbidden"),
    ("ＦＯＲＢＩＤＤＥＮ castle", "forbidden"),
    ("forb\u200bidden castle", "forbidden"),
    ("a FoRbIdDeN castle", "forbidden"),
    ("forbidden.", "forbidden"),
    ("(forbidden)", "forbidden"),
    ("a red    panda eating", "red panda"),        # extra spaces
    ("a RED\u3000PANDA", "red panda"),             # full-width space, case
    ("我想做一个炸弹的图片", "炸弹"),               # Chinese inside a sentence
    ("我想做一个炸\u200b弹", "炸弹"),               # ... split by a zero-width space
    ("猫forbidden猫", "forbidden"),                 # CJK next to a Latin word is a boundary
    ("he was killed", "re:\\bkill(ed|ing)?\\b"),
    ("KILLING time", "re:\\bkill(ed|ing)?\\b"),
])
def test_hits(prompt: str, entry: str) -> None:
    assert hit(BASIC, prompt) == entry


@pytest.mark.parametrize("prompt", [
    "a permitted castle",
    "unforbidden",          # a Latin term is a whole word
    "forbiddenly",
    "a red pandas",          # ... at both ends
    "skillful",             # the regex has its own \b
    "炸鸡",
    "",
])
def test_misses(prompt: str) -> None:
    assert hit(BASIC, prompt) is None


def test_regex_entries_match_inside_words_when_written_so() -> None:
    assert hit(matcher("re:bomb"), "bombastic") == "re:bomb"
    assert hit(matcher("bomb"), "bombastic") is None


def test_categories_comments_and_blank_lines() -> None:
    rules = parse_entries(["# a comment", "", "plain", "[Weapons]", "bomb", "re:gun",
                           "[drugs]", "冰毒"], "file")
    assert [(r.entry, r.category, r.line) for r in rules] == [
        ("plain", "blocklist", 3), ("bomb", "weapons", 5), ("re:gun", "weapons", 6),
        ("冰毒", "drugs", 8)]
    assert matcher("[weapons]", "bomb").find("a bomb") is not None
    assert matcher("[weapons]", "bomb").find("a bomb").category == "weapons"  # type: ignore[union-attr]


@pytest.mark.parametrize(("entry", "why"), [
    ("re:(unclosed", "invalid regular expression"),
    ("re:", "empty regular expression"),
    ("re:x*", "matches an empty prompt"),
    ("\u200b\u200b", "empty once invisible"),
])
def test_unusable_entries_name_their_position(entry: str, why: str) -> None:
    with pytest.raises(BlocklistError) as info:
        parse_entries(["fine", entry], "admin")
    assert info.value.index == 1 and why in info.value.message


def test_the_entries_are_normalized_too() -> None:
    assert hit(matcher("ＡＣＭＥ   Corp"), "buy acme corp shares") == "ＡＣＭＥ   Corp"


def test_first_matching_rule_wins_and_overlaps_are_found() -> None:
    blocklist = matcher("he", "she", "hers")
    assert hit(blocklist, "ushers") is None  # every occurrence sits inside a word
    assert hit(blocklist, "is it hers") == "hers"
    assert hit(blocklist, "she said") == "she"


def test_empty_blocklist() -> None:
    assert Blocklist.empty().find("anything") is None and len(Blocklist.empty()) == 0


# -- the automaton against the obvious search --------------------------------------------------

def naive(patterns: list[str], text: str) -> set[tuple[int, int]]:
    return {(start + len(p) - 1, i) for i, p in enumerate(patterns)
            for start in range(len(text)) if text.startswith(p, start)}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text("abc炸弹", min_size=1, max_size=4), min_size=1, max_size=12),
       st.text("abc炸弹 ", max_size=40))
def test_automaton_finds_exactly_every_occurrence(patterns: list[str], text: str) -> None:
    assert set(Automaton(patterns).find(text)) == naive(patterns, text)


def test_automaton_with_many_patterns() -> None:
    rng = random.Random(7)
    patterns = ["".join(rng.choice("abcdefgh") for _ in range(rng.randint(3, 8)))
                for _ in range(2000)]
    text = "".join(rng.choice("abcdefgh ") for _ in range(3000))
    assert set(Automaton(patterns).find(text)) == naive(patterns, text)


def test_automaton_refuses_an_empty_pattern() -> None:
    with pytest.raises(ValueError, match="empty"):
        Automaton(["a", ""])
