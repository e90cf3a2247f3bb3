"""The README's shell examples run verbatim against a served sandbox: every ```bash block of
"Use it" and "Reference images and edits" that talks to `$IG`, in order, in one scratch
directory, with `IG` and `KEY` set as the README's `export` line says."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from tests.support.e2e import VENV_BIN, Server, ServerFactory, base_env

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"


def example_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Use it"):text.index("## Sizes")]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    return [b for b in blocks if "$IG" in b and not b.startswith("export IG=")]


def test_the_readme_names_the_examples_this_test_runs() -> None:
    blocks = example_blocks()
    assert len(blocks) == 7
    assert any("imagegate generate" in b for b in blocks)
    assert any("/cancel" in b for b in blocks)


@pytest.fixture(scope="module")
def server(module_server_factory: ServerFactory) -> Server:
    return module_server_factory.start()  # default settings, as the README starts it


def test_readme_examples_run_verbatim(server: Server, tmp_path: Path) -> None:
    # `uv run X` is how the README starts the project's commands; here the project's venv
    # is already built, so a stand-in `uv` runs X from it (uv itself would look for a
    # project in the scratch directory).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "uv"
    shim.write_text(f'#!/bin/sh\n[ "$1" = run ] && shift\ncmd="$1"; shift\n'
                    f'exec "{VENV_BIN}/$cmd" "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    work = tmp_path / "work"
    work.mkdir()
    env = base_env({"IG": server.base_url, "KEY": server.key,
                    "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    for block in example_blocks():
        res = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=work, env=env,
                             capture_output=True, text=True, timeout=120, check=False)
        out = res.stdout + res.stderr
        assert res.returncode == 0, f"README block failed:\n{block}\n---\n{out}"
        # An error answer is a body that *starts* with "error" (a cancelled task object
        # carries its cancellation in an "error" field, which is not a refusal).
        assert not re.search(r'(?:^|[}\n])\s*\{\s*"error"', out), (
            f"README block answered an error:\n{block}\n---\n{out}")
    assert sorted(p.name for p in (work / "images").iterdir())[-1].endswith("_1.png")
    assert (work / "ref-1.png").read_bytes()[:4] == b"\x89PNG"
