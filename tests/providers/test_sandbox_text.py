"""The sandbox draws prompts legibly in every script its font covers: Chinese (the 002 seed's
examples), Japanese kana, Korean hangul and Latin, alone or mixed; never as tofu.

Tofu here is what pango draws for a character no font has: a thin hollow box with the code
point's hex digits inside. `hollow_boxes` finds such frames in a coverage mask; the tests
first show it finds them (characters no font can have), then that the sandbox's text has
none, and that Han glyphs have their strokes.
"""

from __future__ import annotations

import importlib.metadata
import itertools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import pyvips

from imagegate.domain.request import ImageRequest
from imagegate.providers import sandbox
from imagegate.providers.sandbox import SandboxProvider, draw_text, font_file, render_image

# The Chinese example prompts of the 002 seed document (its request samples).
SEED_002_PROMPTS = (
    "一只橘猫坐在窗台上看夕阳，水彩画风格",
    "星空下的古老城堡",
    "把这张照片变成水彩画风格",
    "把这两张照片融合成一张海报",
)
LATIN = "a corgi astronaut on the moon, cinematic, 8k"  # the 002 seed's English example
KANA = "ねこがまどでゆうひをみる カタカナ"
HANGUL = "고양이가 창가에서 노을을 본다"
MIXED = "一只橘猫 orange cat ねこ 고양이, 8k 水彩画 watercolour"
# Unassigned code points: no font maps them, so pango can only draw its hex box. (The
# sandbox itself turns them into spaces, as it does every character that is not printable.)
NO_FONT_HAS = ("\u0378", "\u0379", "\u0380", "\u0381")
# Printable, but in no font of a usual host: CJK extension C and D ideographs.
RARE_HAN = ("\U0002a700", "\U0002b740")

DPI = 200  # the prompt's size on a 1024x1024 image (about 33 px type)
WIDE = 10_000  # wrap width that keeps a test string on one line


def bitmap(mask: Any, threshold: int = 128) -> tuple[list[bool], int, int]:
    """Pixels of a 1-band mask at or above `threshold`, row-major, with width and height."""
    data = bytes(mask.write_to_memory())
    return [v >= threshold for v in data], mask.width, mask.height


def hollow_boxes(mask: Any, threshold: int = 128) -> list[tuple[int, int, int, int]]:
    """Bounding boxes (x, y, w, h) of pango's tofu in a mask: a hex box.

    That is an 8-connected group of ink that covers the whole border of its bounding box, so
    thin it is a frame about 1 px wide, with at least two other groups inside (the hex
    digits, which do not touch it). Han glyphs have boxes too (口, the 日 of 照), but with
    strokes 2 px wide at these sizes and nothing loose inside; 回 has one group inside.
    """
    ink, w, h = bitmap(mask, threshold)
    label = [0] * (w * h)
    groups: list[tuple[int, int, int, int, int]] = [(0, 0, 0, 0, 0)]  # x0, y0, x1, y1, count
    for start in range(w * h):
        if not ink[start] or label[start]:
            continue
        current = len(groups)
        label[start] = current
        stack, count = [start], 0
        x0, y0, x1, y1 = w, h, -1, -1
        while stack:
            p = stack.pop()
            count += 1
            px, py = p % w, p // w
            x0, y0, x1, y1 = min(x0, px), min(y0, py), max(x1, px), max(y1, py)
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    nx, ny = px + dx, py + dy
                    if 0 <= nx < w and 0 <= ny < h:
                        q = ny * w + nx
                        if ink[q] and not label[q]:
                            label[q] = current
                            stack.append(q)
        groups.append((x0, y0, x1, y1, count))
    boxes = []
    for current, (x0, y0, x1, y1, count) in enumerate(groups[1:], start=1):
        bw, bh = x1 - x0 + 1, y1 - y0 + 1
        if bw < 6 or bh < 6 or count > 1.5 * 2 * (bw + bh):
            continue
        border = [(x, y) for x in range(x0, x1 + 1) for y in (y0, y1)]
        border += [(x, y) for y in range(y0, y1 + 1) for x in (x0, x1)]
        if any(label[y * w + x] != current for x, y in border):
            continue
        inside = {label[y * w + x] for y in range(y0 + 1, y1) for x in range(x0 + 1, x1)}
        if len(inside - {0, current}) >= 2:
            boxes.append((x0, y0, bw, bh))
    return boxes


def glyph(char: str) -> tuple[int, int, bytes]:
    """One character as the sandbox draws it: size and pixels, comparable across calls."""
    mask = draw_text(char, WIDE, DPI)
    return mask.width, mask.height, bytes(mask.write_to_memory())


def bands(mask: Any) -> int:
    """How many separate horizontal bands of ink a mask has (一 1, 二 2, 三 3)."""
    ink, w, h = bitmap(mask)
    rows = [any(ink[y * w : (y + 1) * w]) for y in range(h)]
    return sum(1 for on, prev in zip(rows, [False, *rows], strict=False) if on and not prev)


def ink_bands(char: str) -> int:
    return bands(draw_text(char, WIDE, DPI))


def make_request(prompt: str) -> ImageRequest:
    return ImageRequest(
        operation="generate", model="gpt-image-2", prompt=prompt, n=1, width=1024,
        height=1024, tier="1k", size_label="1024x1024", output_format="png",
        output_compression=None, background="auto", quality="auto", moderation="auto",
        style=None, user=None, response_format="url",
    )


def text_pixels(png: bytes) -> Any:
    """The drawn text of a sandbox image as a mask: near-white pixels. The background's
    levels stay below 221 and the card is darker still, so only the text reaches them."""
    img = pyvips.Image.new_from_buffer(png, "")
    return (img.extract_band(0, n=3).bandbool("and") > 230).ifthenelse(255, 0).cast("uchar")


def test_the_font_is_a_file_from_a_package_dependency() -> None:
    path = Path(font_file())
    assert path.is_file()
    # A file the installed distribution lists, not one of this repository's.
    dist = importlib.metadata.distribution("paperang-p2-fonts-cjk")
    assert path in {Path(str(dist.locate_file(f))) for f in dist.files or ()}


def test_tofu_is_detected_where_no_font_has_the_character() -> None:
    # Proves the detector on this host's own tofu, so its silence below means something.
    for char in NO_FONT_HAS:
        assert len(hollow_boxes(draw_text(f"ab{char}cd", WIDE, DPI))) == 1, hex(ord(char))
    assert len(hollow_boxes(draw_text("一" + "".join(NO_FONT_HAS), WIDE, DPI))) == 4
    # Through the whole image too, with characters the sandbox keeps.
    rare = [c for c in RARE_HAN if hollow_boxes(draw_text(c, WIDE, DPI))]
    if not rare:
        pytest.skip("this host has a font for CJK extensions C and D")
    png = render_image(make_request("一只橘猫" + "".join(rare)), 0)
    assert len(hollow_boxes(text_pixels(png))) == len(rare)


@pytest.mark.parametrize(
    "prompt", [*SEED_002_PROMPTS, LATIN, KANA, HANGUL, MIXED], ids=lambda p: p[:6]
)
def test_prompt_is_drawn_without_tofu(prompt: str) -> None:
    assert hollow_boxes(draw_text(prompt, WIDE, DPI)) == []
    # Wrapped as the sandbox wraps it, and through the whole image.
    assert hollow_boxes(draw_text(prompt, 300, DPI)) == []
    assert hollow_boxes(text_pixels(render_image(make_request(prompt), 0))) == []


@pytest.mark.parametrize("text", ["".join(SEED_002_PROMPTS), LATIN, KANA, HANGUL])
def test_distinct_characters_get_distinct_glyphs(text: str) -> None:
    chars = sorted(set(text) - {" "})
    glyphs = {char: glyph(char) for char in chars}
    for a, b in itertools.combinations(chars, 2):
        assert glyphs[a] != glyphs[b], (a, b)


def test_han_glyphs_have_their_strokes() -> None:
    # One, two and three horizontal strokes: a box or a blank could not count them.
    assert [ink_bands(c) for c in "一二三"] == [1, 2, 3]
    assert ink_bands("口") == 1


def test_latin_glyphs_have_their_shapes() -> None:
    assert [ink_bands(c) for c in "l=i"] == [1, 2, 2]  # the dot of the i is apart


def test_chinese_prompt_renders_deterministically() -> None:
    request = make_request(SEED_002_PROMPTS[0])
    first = render_image(request, 0)
    assert render_image(request, 0) == first
    assert render_image(make_request(SEED_002_PROMPTS[1]), 0) != first


# Draws with libvips' default "sans", then with the sandbox's font, as PNG masks.
_NO_HOST_FONTS_SCRIPT = """
import sys, pyvips
from imagegate.providers.sandbox import draw_text
text, out = sys.argv[1], sys.argv[2]
# "sans" first: once the sandbox has added its font file, "sans" falls back to that font.
for name, sample in (("sans_a", "ab一"), ("sans_b", "yz三")):
    pyvips.Image.text(sample, font="sans 12", dpi=200).pngsave(f"{out}/{name}.png")
draw_text(text, 10000, 200).pngsave(out + "/sandbox.png")
for i, char in enumerate("一二三"):
    draw_text(char, 10000, 200).pngsave(f"{out}/han{i}.png")
"""


def test_text_needs_no_host_fonts(tmp_path: Path) -> None:
    # A fontconfig setup that knows no font directory, as in a slim container. In a
    # subprocess, since fontconfig reads its configuration once per process.
    conf = tmp_path / "fonts.conf"
    conf.write_text(f"<fontconfig><cachedir>{tmp_path}/cache</cachedir></fontconfig>\n")
    env = {**os.environ, "FONTCONFIG_FILE": str(conf)}
    subprocess.run(
        [sys.executable, "-c", _NO_HOST_FONTS_SCRIPT, MIXED, str(tmp_path)],
        env=env, check=True, timeout=120,
    )

    def load(name: str) -> Any:
        return pyvips.Image.new_from_file(str(tmp_path / name))

    # The host's "sans" finds no font there: any three characters are the same three boxes.
    sans_a, sans_b = load("sans_a.png"), load("sans_b.png")
    assert bytes(sans_a.write_to_memory()) == bytes(sans_b.write_to_memory())
    # The sandbox's font draws the strokes, and the line as wide as on this host, give or
    # take hinting (which comes from the fontconfig setup, so the pixels differ slightly).
    assert [bands(load(f"han{i}.png")) for i in range(3)] == [1, 2, 3]
    here, there = draw_text(MIXED, WIDE, DPI), load("sandbox.png")
    assert abs(there.width - here.width) <= 3 and abs(there.height - here.height) <= 3


def test_a_missing_font_fails_the_provider_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    SandboxProvider()
    monkeypatch.setattr(sandbox, "_FONT_PACKAGE", "imagegate_no_such_font_package")
    font_file.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="font package"):
            SandboxProvider()
    finally:
        font_file.cache_clear()  # the real path again for the tests after this one
