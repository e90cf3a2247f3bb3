"""Not a seed's rule: prompt markers that make a fake upstream deliver less than it was asked
for, as real resellers sometimes do (fewer images than `n`, a smaller tier than requested),
so tests can check that imagegate bills what was delivered.

- `[deliver-n:K]` in the prompt: at most K images, whatever `n` asked for.
- `[deliver-size:WxH]`: every image is WxH instead of the size asked for.

Each fake applies these after its own seed's checks passed (the request itself was valid).
"""

from __future__ import annotations

import re

_FEWER = re.compile(r"\[deliver-n:([1-9][0-9]?)\]")
_SIZE = re.compile(r"\[deliver-size:([1-9][0-9]{1,3})x([1-9][0-9]{1,3})\]")


def delivered(prompt: str, n: int, size: tuple[int, int]) -> tuple[int, tuple[int, int]]:
    """How many images of which size a request for `n` of `size` gets."""
    fewer = _FEWER.search(prompt)
    if fewer is not None:
        n = min(n, int(fewer.group(1)))
    smaller = _SIZE.search(prompt)
    if smaller is not None:
        size = (int(smaller.group(1)), int(smaller.group(2)))
    return n, size
