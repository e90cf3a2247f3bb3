"""FakeApimart holds the 002 seed's own rules (`apimart_rules`), not the gateway's: every
cell of the seed's `size × resolution` table (pasted below as the seed prints it), its
limits on `n` and `image_urls`, and its 400 body for anything else."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest

from imagegate.testing.upstreams.apimart_api import FakeApimart

pytestmark = pytest.mark.anyio

AUTH = {"Authorization": "Bearer sk-fake"}
SIZE_ERROR = {"error": {"code": 400,
                        "message": "参数错误：size 不合法 / resolution 不支持 / 像素违规等",
                        "type": "invalid_request_error"}}
# The 002 seed's table, word for word.
SEED_TABLE = """
  | `1:1`  | 1024×1024 / 1254×1254 | 2048×2048 | **2880×2880** |
  | `3:2`  | 1536×1024             | 2048×1360 | **3520×2336** |
  | `2:3`  | 1024×1536             | 1360×2048 | **2336×3520** |
  | `4:3`  | 1024×768              | 2048×1536 | **3312×2480** |
  | `3:4`  | 768×1024              | 1536×2048 | **2480×3312** |
  | `5:4`  | 1280×1024 / 1448×1086 | 2560×2048 | **3216×2576** |
  | `4:5`  | 1024×1280 / 1122×1402 | 2048×2560 | **2576×3216** |
  | `16:9` | 1536×864 / 1672×941   | 2048×1152 | **3840×2160** |
  | `9:16` | 864×1536 / 941×1672   | 1152×2048 | **2160×3840** |
  | `2:1`  | 2048×1024 / 1774×887  | 2688×1344 | **3840×1920** |
  | `1:2`  | 1024×2048 / 887×1774  | 1344×2688 | **1920×3840** |
  | `3:1`  | 1881×836 / 1536×512   | 3072×1024 | **3840×1280** |
  | `1:3`  | 887×1774 / 512×1536   | 1024×3072 | **1280×3840** |
  | `21:9` | 2016×864 / 1915×821   | 2688×1152 | **3840×1648** |
  | `9:21` | 864×2016 / 821×1915   | 1152×2688 | **1648×3840** |
"""


def seed_cells() -> list[tuple[str, str, list[str]]]:
    """(ratio, tier, its sizes as `WxH`) for every cell of the pasted table."""
    cells = []
    for line in SEED_TABLE.strip().splitlines():
        ratio, *tiers = (c.strip(" `*") for c in line.strip().strip("|").split("|"))
        for tier, cell in zip(("1k", "2k", "4k"), tiers, strict=True):
            cells.append((ratio, tier, re.findall(r"\d+×\d+", cell)))
    return [(r, t, [s.replace("×", "x") for s in sizes]) for r, t, sizes in cells]


async def submit_all(bodies: list[dict[str, Any]]) -> list[tuple[int, Any, tuple[int, int]]]:
    """Submit each body to one fake: (status, answer, the pixels its task renders)."""
    out = []
    async with FakeApimart() as fake, aiohttp.ClientSession(fake.url) as http:
        for body in bodies:
            async with http.post("/v1/images/generations", json=body, headers=AUTH) as r:
                answer = await r.json(content_type=None)
            pixels = (0, 0)
            if r.status == 200:
                task = fake.tasks[answer["data"][0]["task_id"]]
                pixels = (task.width, task.height)
            out.append((r.status, answer, pixels))
    return out


async def test_every_ratio_and_tier_renders_its_cells_first_size() -> None:
    cells = seed_cells()
    assert len(cells) == 45
    bodies = [{"model": "gpt-image-2", "prompt": "p", "size": ratio, "resolution": tier}
              for ratio, tier, _ in cells]
    for (ratio, tier, sizes), (status, answer, pixels) in zip(
            cells, await submit_all(bodies), strict=True):
        assert status == 200, (ratio, tier, answer)
        assert f"{pixels[0]}x{pixels[1]}" == sizes[0], (ratio, tier)


async def test_every_size_of_the_table_may_be_sent_as_pixels() -> None:
    sizes = sorted({size for _, _, cell in seed_cells() for size in cell})
    assert len(sizes) == 55  # 45 cells, 11 second 1k variants, 887×1774 listed twice
    # The seed's prose writes `1881x836`; its table writes `1881×836`.
    bodies = [{"prompt": "p", "size": size} for size in sizes]
    bodies += [{"prompt": "p", "size": "1881×836"}]
    for body, (status, answer, pixels) in zip(bodies, await submit_all(bodies), strict=True):
        assert status == 200, (body, answer)
        assert f"{pixels[0]}x{pixels[1]}" == body["size"].replace("×", "x")


async def test_defaults_and_auto() -> None:
    bodies: list[dict[str, Any]] = [
        # the seed's minimal request
        {"model": "gpt-image-2", "prompt": "一只橘猫坐在窗台上看夕阳，水彩画风格"},
        {"prompt": "p", "size": "auto"},
        {"prompt": "p", "size": "auto", "resolution": "2k"},
        {"prompt": "p", "size": "16:9"},
    ]
    results = await submit_all(bodies)
    assert [pixels for _, _, pixels in results] == [(1024, 1024), (1024, 1024), (2048, 2048),
                                                    (1536, 864)]


@pytest.mark.parametrize("extra", [
    {"size": "1280x720"},  # a free WxH: only the table's sizes are pixels the seed takes
    {"size": "1086x1448"},  # 5:4's 1448×1086 turned: the seed lists 4:5 as 1122×1402
    {"size": "1402x1122"},
    {"size": "836x1881"},  # 3:1's 1881×836 turned: the seed's 1:3 row lists 887×1774
    {"size": "7:3"},
    {"size": "1024 x 1024"},
    {"resolution": "8k"},
    {"size": "16:9", "resolution": "1K"},
])
async def test_sizes_the_seed_refuses(extra: dict[str, Any]) -> None:
    ((status, answer, _),) = await submit_all([{"prompt": "p", **extra}])
    assert (status, answer) == (400, SIZE_ERROR)


@pytest.mark.parametrize(("extra", "accepted"), [
    ({"n": 1}, True), ({"n": 10}, True), ({"n": 11}, False), ({"n": 0}, False),
    ({"n": "1"}, False),  # "必须传入纯数字（如 1），不要加引号"
    ({"image_urls": ["https://example.com/photo.jpg"] * 16}, True),
    ({"image_urls": ["https://example.com/photo.jpg", "data:image/png;base64,iVBORw0KGgo="]},
     True),
    ({"response_format": "b64_json", "style": "vivid"}, True),  # ignored, not refused
    ({"official_fallback": True}, True),
])
async def test_n_references_and_extras(extra: dict[str, Any], accepted: bool) -> None:
    ((status, answer, _),) = await submit_all([{"prompt": "p", **extra}])
    if accepted:
        assert status == 200, answer
    else:
        assert status == 400
        assert set(answer["error"]) == {"code", "message", "type"}
        assert (answer["error"]["code"], answer["error"]["type"]) == (400,
                                                                      "invalid_request_error")
        assert "n" in answer["error"]["message"]


async def test_seventeen_references_get_the_seeds_message() -> None:
    ((status, answer, _),) = await submit_all([{
        "prompt": "p", "image_urls": ["https://example.com/photo.jpg"] * 17}])
    assert (status, answer) == (400, {"error": {"code": 400, "type": "invalid_request_error",
                                                "message": "image_urls exceeds max 16"}})
