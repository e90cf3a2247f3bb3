"""The normalization prompts and blocklist entries share (moderation/text.py)."""

from __future__ import annotations

import sys
import unicodedata

import pytest

from imagegate.moderation.text import normalize_text


@pytest.mark.parametrize("raw", [
    "ＦＯＲＢＩＤＤＥＮ",          # full-width
    "forb\u200bidden",            # zero-width space
    "FoRbIdDeN",                  # case
    "for\u00adbid\u2060den",      # soft hyphen, word joiner
    "\ufeffforbidden\u200d",      # byte-order mark, zero-width joiner
    "forbi\ufe0fdden",            # a variation selector
    "f\u202eorbidden",            # a bidirectional override
    "  forbidden\t",              # spaces around
])
def test_evasions_normalize_to_the_plain_word(raw: str) -> None:
    assert normalize_text(raw) == "forbidden"


def test_whitespace_runs_collapse_to_one_space() -> None:
    assert normalize_text("a  \t\n big \u3000 dog") == "a big dog"  # U+3000: ideographic


def test_compatibility_forms_fold() -> None:
    assert normalize_text("Straße ① ﬁne ｶﾀｶﾅ") == "strasse 1 fine カタカナ"


def test_chinese_is_kept_as_it_is() -> None:
    assert normalize_text("我想做一个炸弹") == "我想做一个炸弹"


def test_every_format_character_is_removed() -> None:
    """Category Cf as this Python knows it: none may survive (a new Unicode version adding
    one shows up here)."""
    survivors = [hex(cp) for cp in range(sys.maxunicode + 1)
                 if unicodedata.category(chr(cp)) == "Cf"
                 and normalize_text(f"a{chr(cp)}b") != "ab"]
    assert survivors == []
