"""The one normalization that both the prompt and every blocklist entry go through before
they are compared, so that writing a word differently does not get it past the list:

1. invisible characters are removed: zero-width spaces and joiners, bidirectional marks,
   the soft hyphen, the byte-order mark, variation selectors, tag characters, Hangul fillers
   and the other format characters (Unicode category Cf), and control characters;
2. Unicode NFKC: compatibility forms fold to their plain letters, so full-width `ＡＢＣ` and
   the ideographic space become half-width `ABC` and a space, ligatures come apart, `①` is `1`;
3. case folding (`str.casefold`: `Straße` = `strasse`), then NFKC again where folding left
   text that is not normalized;
4. every run of whitespace becomes one space, and the ends are trimmed.

`ＦＯＲＢＩＤＤＥＮ`, `forb\u200bidden` and `FoRbIdDeN` all become `forbidden`. The result is
only ever compared; the prompt sent upstream is the client's own text.
"""

from __future__ import annotations

import re
import unicodedata

# Category Cf (format) as of Unicode 15, plus the invisible characters of other categories
# people use to split a word: the combining grapheme joiner, Hangul fillers, Khmer inherent
# vowels, Mongolian variation selectors, variation selectors; and C0/C1 controls that are not
# whitespace. A regular expression, because a Python loop over each character would cost
# more than the whole blocklist scan.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u17b4"
    "\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff"
    "\uffa0\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0000-\U000e0fff"
    "\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]"
)


# The ASCII members of `_INVISIBLE` (controls that are not whitespace), for `str.translate`,
# whose ASCII fast path is ~25x quicker than the regular expression on a long prompt.
_ASCII_INVISIBLE = {c: None for c in (*range(0x00, 0x09), *range(0x0E, 0x1C), 0x7F)}
# What `str.split()` would collapse besides single spaces: in ASCII text, and after NFKC
# (which turns the other Unicode spaces, U+00A0, U+2000-U+200A, U+3000…, into U+0020).
_ASCII_SPACE_RUNS = ("  ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f")
_SPACE_RUNS = (*_ASCII_SPACE_RUNS, "\x85", "\u1680", "\u2028", "\u2029")


def _collapse(text: str, runs: tuple[str, ...]) -> str:
    """`" ".join(text.split())`, skipped when there is nothing to collapse: substring tests
    are a memchr each, the split and join a copy of every word."""
    if any(run in text for run in runs):
        return " ".join(text.split())
    return text.strip(" ")


def normalize_text(text: str) -> str:
    """`text` as blocklists see it (see the module docstring)."""
    if text.isascii():
        # The same steps for the common case, cheaper: nothing to NFKC, `lower` is
        # `casefold` in ASCII, and most prompts have no whitespace to collapse.
        return _collapse(text.translate(_ASCII_INVISIBLE).lower(), _ASCII_SPACE_RUNS)
    text = _INVISIBLE.sub("", text)
    # Most prompts are already NFKC: the quick check costs a fraction of normalizing.
    if not text.isascii() and not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    text = text.casefold()
    if not text.isascii() and not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    return _collapse(text, _SPACE_RUNS)
