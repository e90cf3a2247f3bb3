"""Aho–Corasick in plain Python, the "no dependency" candidate bench_moderation.py measures
against the libraries: every occurrence of any of many strings in one pass over the text.
imagegate uses ahocorasick-rs instead (imagegate/moderation/automaton.py), 20-40 times
faster on the same prompts; this one stays here as the measured baseline."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence


class Automaton:
    """Built from `patterns` (non-empty strings); `find(text)` yields `(end, index)` for
    every occurrence: `patterns[index]` ends at `text[end]`."""

    __slots__ = ("_fail", "_goto", "_out")

    def __init__(self, patterns: Sequence[str]) -> None:
        goto: list[dict[str, int]] = [{}]
        out: list[tuple[int, ...]] = [()]
        for index, pattern in enumerate(patterns):
            state = 0
            for ch in pattern:
                nxt = goto[state].get(ch)
                if nxt is None:
                    nxt = len(goto)
                    goto[state][ch] = nxt
                    goto.append({})
                    out.append(())
                state = nxt
            out[state] += (index,)
        fail = [0] * len(goto)
        queue = deque(goto[0].values())
        while queue:  # breadth first: a state's fail link is always shallower than it
            state = queue.popleft()
            for ch, nxt in goto[state].items():
                queue.append(nxt)
                f = fail[state]
                while f and ch not in goto[f]:
                    f = fail[f]
                target = goto[f].get(ch, 0)
                fail[nxt] = target if target != nxt else 0
                out[nxt] += out[fail[nxt]]  # patterns ending inside this one end here too
        self._goto = goto
        self._fail = fail
        self._out = out

    @property
    def states(self) -> int:
        return len(self._goto)

    def find(self, text: str) -> Iterator[tuple[int, int]]:
        goto, fail, out = self._goto, self._fail, self._out
        root = goto[0]
        state = 0
        for end, ch in enumerate(text):
            while state and ch not in goto[state]:
                state = fail[state]
            state = goto[state].get(ch, 0) if state else root.get(ch, 0)
            if out[state]:
                for index in out[state]:
                    yield end, index
