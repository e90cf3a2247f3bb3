"""What the APIMart service accepts, as the 002 seed states it, for the fake in
`apimart_api`. Written out from the seed on purpose, not imported from imagegate: a fake that
shared the gateway's rules could never catch the gateway disagreeing with the service.

002 ("Body"):
- `prompt` required; `n` 1–10, a bare number ("必须传入纯数字（如 `1`），不要加引号").
- `size` `auto` (which means `1:1`), one of 15 ratios, or a pixel size taken from the
  `size × resolution` table ("也可以直接通过 `size` 传入表格中的像素尺寸", e.g. `1881x836` /
  `887x1774`); default `1:1`. `resolution` `1k` / `2k` / `4k`, default `1k`.
- `image_urls` an array of at most 16 ("image_urls exceeds max 16"), each at most 20M and
  256M in all; URLs and base64 data URIs may be mixed.
- `response_format`, `style` and other fields are ignored, not refused.
- A bad size or resolution is the seed's 400: "参数错误：size 不合法 / resolution 不支持 /
  像素违规等".

`model` is not checked: the seed documents the gpt-image-2 page only and says nothing of
what another name gets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# The seed's table, cell by cell: ratio -> tier -> its pixel sizes, in the seed's order (two
# variants for most 1k cells). The seed's own oddities are kept: 3:1 at 1k lists 1881×836
# first, and 1:3 at 1k lists 887×1774 (the 1:2 shape), not 836×1881.
TABLE: dict[str, dict[str, tuple[tuple[int, int], ...]]] = {
    "1:1": {"1k": ((1024, 1024), (1254, 1254)), "2k": ((2048, 2048),),
            "4k": ((2880, 2880),)},
    "3:2": {"1k": ((1536, 1024),), "2k": ((2048, 1360),), "4k": ((3520, 2336),)},
    "2:3": {"1k": ((1024, 1536),), "2k": ((1360, 2048),), "4k": ((2336, 3520),)},
    "4:3": {"1k": ((1024, 768),), "2k": ((2048, 1536),), "4k": ((3312, 2480),)},
    "3:4": {"1k": ((768, 1024),), "2k": ((1536, 2048),), "4k": ((2480, 3312),)},
    "5:4": {"1k": ((1280, 1024), (1448, 1086)), "2k": ((2560, 2048),), "4k": ((3216, 2576),)},
    "4:5": {"1k": ((1024, 1280), (1122, 1402)), "2k": ((2048, 2560),), "4k": ((2576, 3216),)},
    "16:9": {"1k": ((1536, 864), (1672, 941)), "2k": ((2048, 1152),), "4k": ((3840, 2160),)},
    "9:16": {"1k": ((864, 1536), (941, 1672)), "2k": ((1152, 2048),), "4k": ((2160, 3840),)},
    "2:1": {"1k": ((2048, 1024), (1774, 887)), "2k": ((2688, 1344),), "4k": ((3840, 1920),)},
    "1:2": {"1k": ((1024, 2048), (887, 1774)), "2k": ((1344, 2688),), "4k": ((1920, 3840),)},
    "3:1": {"1k": ((1881, 836), (1536, 512)), "2k": ((3072, 1024),), "4k": ((3840, 1280),)},
    "1:3": {"1k": ((887, 1774), (512, 1536)), "2k": ((1024, 3072),), "4k": ((1280, 3840),)},
    "21:9": {"1k": ((2016, 864), (1915, 821)), "2k": ((2688, 1152),), "4k": ((3840, 1648),)},
    "9:21": {"1k": ((864, 2016), (821, 1915)), "2k": ((1152, 2688),), "4k": ((1648, 3840),)},
}
TABLE_SIZES = frozenset(wh for tiers in TABLE.values() for cell in tiers.values()
                        for wh in cell)
RESOLUTIONS = ("1k", "2k", "4k")
DEFAULT_SIZE = "1:1"
DEFAULT_RESOLUTION = "1k"
MAX_N = 10
MAX_REFERENCES = 16
MAX_REFERENCE_BYTES = 20 * 1024 * 1024
MAX_REFERENCES_BYTES = 256 * 1024 * 1024
SIZE_MESSAGE = "参数错误：size 不合法 / resolution 不支持 / 像素违规等"

# The seed writes pixel sizes both as `1881x836` (prose) and `1881×836` (its table).
_WXH = re.compile(r"^([1-9][0-9]{0,4})[x×]([1-9][0-9]{0,4})$")


class Refusal(ValueError):
    """The request breaks one of the seed's rules; the message is the one to answer."""


def check(fields: Mapping[str, Any]) -> tuple[int, int]:
    """Check a submission; returns the pixels to render or raises Refusal."""
    prompt = fields.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise Refusal("prompt 不能为空")
    n = fields.get("n", 1)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_N:
        raise Refusal(f"n 必须是 1 - {MAX_N} 的整数")
    size = pixels(str(fields.get("size") or DEFAULT_SIZE),
                  str(fields.get("resolution") or DEFAULT_RESOLUTION))
    _check_references(fields.get("image_urls"))
    return size


def pixels(size: str, resolution: str) -> tuple[int, int]:
    """What `size` at `resolution` renders as, by the table: a ratio gives its cell's first
    size, a pixel size must be one of the table's."""
    if resolution not in RESOLUTIONS:
        raise Refusal(SIZE_MESSAGE)
    wxh = _WXH.match(size)
    if wxh is not None:
        wh = int(wxh.group(1)), int(wxh.group(2))
        if wh not in TABLE_SIZES:
            raise Refusal(SIZE_MESSAGE)
        return wh
    cell = TABLE.get(DEFAULT_SIZE if size == "auto" else size)
    if cell is None:
        raise Refusal(SIZE_MESSAGE)
    return cell[resolution][0]


def _check_references(refs: Any) -> None:
    if refs is None:
        return
    if not isinstance(refs, list):
        raise Refusal("image_urls must be an array")
    if len(refs) > MAX_REFERENCES:
        raise Refusal(f"image_urls exceeds max {MAX_REFERENCES}")
    sizes = [len(ref.partition(",")[2]) * 3 // 4 for ref in refs
             if isinstance(ref, str) and ref.startswith("data:")]
    if any(size > MAX_REFERENCE_BYTES for size in sizes):
        raise Refusal("单张参考图不能超过 20M")
    if sum(sizes) > MAX_REFERENCES_BYTES:
        raise Refusal("参考图总大小不能超过 256M")
