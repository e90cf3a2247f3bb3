"""Operator blocklists: the entry syntax, and one compiled matcher over any number of entries.

One entry per line (a file) or list item (the config, the admin API, a key's list):

- `term` or `a phrase`: refused wherever it occurs in the normalized prompt (text.py) as
  whole words. Characters of scripts written without spaces (Chinese, Japanese, Korean, Thai,
  Lao, Khmer, Myanmar) need no word boundary, so `炸弹` matches inside `我想做一个炸弹的图片`;
  a Latin `bomb` does not match inside `bombastic` (write `re:bomb` for that).
- `re:PATTERN`: a Python regular expression searched in the normalized prompt (lower case,
  NFKC, single spaces), case-insensitively.
- `[category]`: the category of the entries after it, named in refusals (`blocklist` until a
  line says otherwise). Blank lines and lines starting with `#` are skipped.

Matching costs one pass of an Aho–Corasick automaton over the prompt for all terms together
(automaton.py) plus one search per regular expression, so terms scale and regexes do not:
keep those few.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from imagegate.moderation.automaton import Automaton
from imagegate.moderation.text import normalize_text

DEFAULT_CATEGORY = "blocklist"
REGEX_PREFIX = "re:"
_CATEGORY_LINE = re.compile(r"^\[([A-Za-z0-9][A-Za-z0-9_/ .-]{0,63})\]$")
# Scripts written without spaces between words: a term in them matches anywhere.
_UNSEGMENTED = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1100-\u11ff\u1780-\u17ff\u2e80-\u2fdf\u3040-\u30ff"
    "\u3100-\u312f\u3130-\u318f\u3190-\u31ff\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f"
    "\uac00-\ud7ff\uf900-\ufaff\U00020000-\U0003ffff]"
)


class BlocklistError(ValueError):
    """An entry that cannot be used; `index` is its position among the lines given."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.message = message


@dataclass(frozen=True, slots=True)
class Rule:
    """One entry: a normalized term or a compiled regex, its category and where it came
    from (`origin`: "config", "file", "admin" or "key"; `line`: its 1-based line/item)."""

    entry: str  # as written (logs with log_prompts, and `imagegate moderation test`)
    category: str
    origin: str
    line: int
    term: str = ""
    pattern: re.Pattern[str] | None = None


def parse_entries(lines: Iterable[str], origin: str) -> list[Rule]:
    """The rules of `lines`; BlocklistError names the first unusable one."""
    rules: list[Rule] = []
    category = DEFAULT_CATEGORY
    for index, raw in enumerate(lines):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        header = _CATEGORY_LINE.match(line)
        if header:
            category = header.group(1).strip().lower()
            continue
        if line.startswith(REGEX_PREFIX):
            source = line[len(REGEX_PREFIX):].strip()
            if not source:
                raise BlocklistError(index, "an empty regular expression would match every "
                                            "prompt")
            try:
                pattern = re.compile(source, re.IGNORECASE)
            except re.error as exc:
                raise BlocklistError(index, f"invalid regular expression: {exc}") from None
            if pattern.search(""):
                raise BlocklistError(index, "this regular expression matches an empty "
                                            "prompt, so it would refuse every prompt")
            rules.append(Rule(line, category, origin, index + 1, pattern=pattern))
            continue
        term = normalize_text(line)
        if not term:
            raise BlocklistError(index, "the entry is empty once invisible characters are "
                                        "removed")
        rules.append(Rule(line, category, origin, index + 1, term=term))
    return rules


def _needs_boundary(ch: str) -> bool:
    return (ch.isalnum() or ch == "_") and not _UNSEGMENTED.match(ch)


class Blocklist:
    """Compiled rules; `find(normalized_text)` gives the first rule that matches, or None."""

    __slots__ = ("_automaton", "_bounds", "_patterns", "_terms", "rules")

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        self._terms = [r for r in self.rules if r.pattern is None]
        # Per term: (length, needs a word boundary before it, needs one after it).
        self._bounds = [(len(r.term), _needs_boundary(r.term[0]), _needs_boundary(r.term[-1]))
                        for r in self._terms]
        self._automaton = Automaton([r.term for r in self._terms]) if self._terms else None
        self._patterns = [r for r in self.rules if r.pattern is not None]

    @classmethod
    def empty(cls) -> Blocklist:
        return cls(())

    def __len__(self) -> int:
        return len(self.rules)

    def find(self, text: str) -> Rule | None:
        """`text` must already be normalized (`normalize_text`)."""
        if self._automaton is not None:
            size = len(text)
            for end, index in self._automaton.find(text):
                length, left, right = self._bounds[index]
                start = end - length + 1
                if left and start > 0 and _needs_boundary(text[start - 1]):
                    continue
                if right and end + 1 < size and _needs_boundary(text[end + 1]):
                    continue
                return self._terms[index]
        for rule in self._patterns:
            assert rule.pattern is not None
            if rule.pattern.search(text):
                return rule
        return None
