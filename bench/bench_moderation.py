"""The blocklist check's cost per request: 10,000 entries against prompts of 200 to 32,000
characters, in process (no HTTP: the figure is what moderation adds to a request, and on a
shared 2-core machine an HTTP round trip's noise is larger than the thing measured). Prints
one markdown table; see bench/README.md ("Moderation"). Not a test: nothing is asserted.

    .venv/bin/python bench/bench_moderation.py                  # 3 runs per row, ~1 minute
    .venv/bin/python bench/bench_moderation.py --quick          # 1 short run
    uv run --with pyahocorasick python bench/bench_moderation.py   # + the C library's rows

Rows, for each prompt length:
- `normalize`: `normalize_text` alone (NFKC, case folding, invisible characters, spaces);
- `Blocklist.find`: the compiled global list (ahocorasick-rs, then the word-boundary check
  of each occurrence) on the normalized prompt;
- `blocklist check`: what the create path runs, `Moderation.blocklist_verdict` (normalize,
  the global list, a 50-entry key list) — the per-request figure the issue's ≤ 0.2 ms is for;
- `+ 100 regexes`: the same with 100 `re:` entries added to the 10,000;
- `pure-Python Aho–Corasick` (bench/_pure_aho_corasick.py), `pyahocorasick (C)` when it is
  importable (not a dependency), `ahocorasick-rs (Rust)` (the one imagegate uses): every
  occurrence of the same terms in the same normalized prompt, matching only;
- `trie regex`: one Python regular expression shaped as a trie of the same terms (the usual
  "no dependency" alternative), at the shorter lengths.

Entries are generated deterministically: 5,000 Latin words, 3,000 two- and three-word
phrases, 2,000 Chinese terms of 2–4 characters. Prompts mix English and Chinese text and
match no entry, so every matcher scans the whole prompt (the worst case for a clean prompt;
a hit stops earlier). Each run times `--calls` calls and keeps their median and p99; the
table gives the median of the runs' medians.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import platform
import random
import re
import statistics
import string
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from _pure_aho_corasick import Automaton as PureAutomaton
from _util import fmt_num, median

from imagegate.accounts.keys import ApiKey
from imagegate.config import Settings
from imagegate.moderation.blocklist import Blocklist, parse_entries
from imagegate.moderation.service import Moderation
from imagegate.moderation.text import normalize_text

LENGTHS = (200, 1_000, 4_000, 32_000)
TARGET_MS = 0.2
ENTRIES = 10_000
_TEXT = ("A photorealistic portrait of an old fisherman mending his nets at dawn, soft "
         "golden light, 85mm lens, shallow depth of field. 一位老渔夫在黎明时分修补渔网，"
         "柔和的金色光线，浅景深。 Mist over the harbour, gulls, wet cobblestones. ")


def entries(seed: int = 17) -> list[str]:
    rng = random.Random(seed)

    def word() -> str:
        return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(5, 11)))

    def cjk() -> str:
        return "".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(rng.randint(2, 4)))

    out: set[str] = set()
    while len(out) < 5_000:
        out.add(word())
    while len(out) < 8_000:
        out.add(" ".join(word() for _ in range(rng.randint(2, 3))))
    while len(out) < ENTRIES:
        out.add(cjk())
    return sorted(out)


def regexes(count: int, seed: int = 5) -> list[str]:
    rng = random.Random(seed)
    return [f"re:\\b{''.join(rng.choice('qxz') for _ in range(3))}[a-z]{{2,4}}ed\\b"
            for _ in range(count)]


def prompt(length: int) -> str:
    return (_TEXT * (length // len(_TEXT) + 1))[:length]


def trie_regex(terms: Sequence[str]) -> re.Pattern[str]:
    trie: dict[str, Any] = {}
    for term in terms:
        node = trie
        for ch in term:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        alternatives = [re.escape(ch) + build(node[ch]) for ch in sorted(k for k in node if k)]
        if not alternatives:
            return ""
        body = alternatives[0] if len(alternatives) == 1 and "" not in node else \
            "(?:" + "|".join(alternatives) + ")"
        return body + "?" if "" in node and alternatives else body

    return re.compile(build(trie))


@dataclass
class Row:
    name: str
    length: int
    runs: list[float] = field(default_factory=list)  # median ms per call, one per run
    p99s: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def value(self) -> float | None:
        return median(self.runs)


def time_calls(fn: Callable[[], object], calls: int) -> tuple[float, float]:
    """(median, p99) of `calls` calls, in ms."""
    for _ in range(min(20, calls)):  # warm caches
        fn()
    samples = []
    gc.disable()
    try:
        for _ in range(calls):
            started = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - started) * 1e3)
    finally:
        gc.enable()
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def build_notes(terms: list[str]) -> list[str]:
    notes = []
    tracemalloc.start()
    started = time.perf_counter()
    blocklist = Blocklist(parse_entries(terms, "config"))
    took = time.perf_counter() - started
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    started = time.perf_counter()
    pure = PureAutomaton([r.term for r in blocklist.rules])
    notes.append(f"building the 10,000-entry list (parse, normalize, automaton): {took:.2f} s, "
                 f"{size / 1e6:.1f} MB traced by Python (the Rust automaton's own memory is "
                 f"not traced); the pure-Python automaton: {time.perf_counter() - started:.2f} "
                 f"s, {pure.states:,} states")
    if len(libraries(["a"])) < 2:
        notes.append("pyahocorasick is not importable: its rows are left out (run with "
                     "`uv run --with pyahocorasick python bench/bench_moderation.py`)")
    return notes


def pure_scan(automaton: PureAutomaton, text: str) -> object:
    return list(automaton.find(text))


def libraries(terms: Sequence[str]) -> list[tuple[str, Callable[[str], object]]]:
    """(row name, scan) of the C and Rust Aho–Corasick libraries that are importable: each
    scan reports every (overlapping) occurrence, as the pure-Python automaton does."""
    found: list[tuple[str, Callable[[str], object]]] = []
    try:
        import ahocorasick

        c_automaton: Any = ahocorasick.Automaton()
        for index, term in enumerate(terms):
            c_automaton.add_word(term, index)
        c_automaton.make_automaton()
        found.append(("pyahocorasick (C)", lambda text: list(c_automaton.iter(text))))
    except ImportError:
        pass
    import ahocorasick_rs  # a dependency of imagegate: always there

    rs_automaton = ahocorasick_rs.AhoCorasick(list(terms))
    found.append(("ahocorasick-rs (Rust)",
                  lambda text: rs_automaton.find_matches_as_indexes(text, overlapping=True)))
    return found


def measure(reps: int, calls: int, lengths: Sequence[int]) -> tuple[list[Row], list[str]]:
    terms = entries()
    notes = build_notes(terms)
    settings = Settings.model_validate({"moderation_blocklist": terms})
    moderation = Moderation(settings)
    asyncio.run(moderation.reload())
    with_regexes = Moderation(Settings.model_validate(
        {"moderation_blocklist": terms + regexes(100)}))
    asyncio.run(with_regexes.reload())
    key = ApiKey(id="key_bench", name="b", prefix="ig_", created_at=0.0, revoked_at=None,
                 moderation_blocklist=tuple(terms[:50]))
    blocklist = Blocklist(parse_entries(terms, "config"))
    normalized_terms = [r.term for r in blocklist.rules]
    trie = trie_regex(normalized_terms)
    pure = PureAutomaton(normalized_terms)
    rows: list[Row] = []
    for length in lengths:
        raw = prompt(length)
        text = normalize_text(raw)
        assert moderation.blocklist_verdict(raw, key) is None, "the prompt must match nothing"
        cases: list[tuple[str, Callable[[], object], str]] = [
            ("normalize", partial(normalize_text, raw), ""),
            ("Blocklist.find (ahocorasick-rs + word boundaries)", partial(blocklist.find, text),
             ""),
            ("blocklist check (normalize + global + key list)",
             partial(moderation.blocklist_verdict, raw, key), "the per-request cost"),
            ("blocklist check + 100 regexes",
             partial(with_regexes.blocklist_verdict, raw, key),
             "regexes are searched one by one"),
        ]
        cases.append(("pure-Python Aho–Corasick", partial(pure_scan, pure, text),
                      "matching only; measured baseline"))
        for name, scan in libraries(normalized_terms):
            cases.append((name, partial(scan, text), "matching only, no boundary check"))
        if length <= 4_000:
            cases.append(("trie regex (pure Python alternative)", partial(trie.search, text),
                          "not chosen"))
        for name, fn, note in cases:
            row = Row(name, length, note=note)
            n = calls if length <= 4_000 else max(20, calls // 20)
            for _ in range(reps):
                mid, p99 = time_calls(fn, n)
                row.runs.append(mid)
                row.p99s.append(p99)
            rows.append(row)
            print(f"... {length:>6} chars  {name}: {fmt_num(row.value, 4)} ms", flush=True)
    return rows, notes


def table(rows: list[Row]) -> str:
    out = ["| what | prompt chars | ms per request (median) | runs | p99 ms | target | notes |",
           "|---|---:|---:|---|---:|---|---|"]
    for r in rows:
        target = ""
        if r.name.startswith("blocklist check (") and r.value is not None:
            ok = "✓" if r.value <= TARGET_MS else "✗"
            target = f"≤ {TARGET_MS} {ok}"
        out.append(f"| {r.name} | {r.length:,} | {fmt_num(r.value, 4)} | "
                   f"{', '.join(fmt_num(v, 4) for v in r.runs)} | "
                   f"{fmt_num(median(r.p99s), 4)} | {target} | {r.note} |")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3, help="runs per row (default 3)")
    parser.add_argument("--calls", type=int, default=2_000,
                        help="calls per run (default 2,000; a twentieth at 32,000 chars)")
    parser.add_argument("--quick", action="store_true", help="1 run of 300 calls")
    args = parser.parse_args(argv)
    reps, calls = (1, 300) if args.quick else (max(1, min(args.reps, 10)), args.calls)
    header = (f"bench_moderation: {ENTRIES:,} entries, {reps} run(s) × {calls} calls; "
              f"Python {platform.python_version()}, {platform.machine()}")
    print(header, flush=True)
    rows, notes = measure(reps, calls, LENGTHS)
    print()
    print(header)
    print(table(rows))
    for note in notes:
        print(f"- {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
