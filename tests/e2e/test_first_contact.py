"""What a new user meets first, against real `imagegate serve` processes: URLs a client can
download as given (the 002 seed's own `requests` example included), forwarded headers from
trusted and untrusted peers, and a first start that cannot lose its key."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import requests

from tests.support.e2e import IMAGEGATE, Server, ServerFactory, base_env, decode_image

pytestmark = pytest.mark.e2e

FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "img.example.com"}


@pytest.fixture(scope="module")
def slow_server(module_server_factory: ServerFactory) -> Server:
    # A second per task, so the seed's status loop sees `submitted` and `processing`.
    return module_server_factory.start({"IMAGEGATE_SANDBOX_LATENCY": "1"})


def test_the_002_seeds_python_example(slow_server: Server) -> None:
    """The seed's example with only the base URL and key changed, then its documented
    polling loop and a plain download of `url[0]`."""
    url = f"{slow_server.base_url}/apimart/v1/images/generations"
    payload = {
        "model": "gpt-image-2",
        "prompt": "一只橘猫坐在窗台上看夕阳，水彩画风格",
        "n": 1,
        "size": "16:9",
        "resolution": "2k",
    }
    headers = {
        "Authorization": f"Bearer {slow_server.key}",
        "Content-Type": "application/json",
    }
    response = requests.post(url, json=payload, headers=headers, timeout=30)
    submitted = response.json()
    assert submitted["code"] == 200 and submitted["data"][0]["status"] == "submitted"
    task_id = submitted["data"][0]["task_id"]

    seen = []
    deadline = time.monotonic() + 60
    while True:
        data = requests.get(f"{slow_server.base_url}/apimart/v1/tasks/{task_id}",
                            headers=headers, timeout=30).json()["data"]
        seen.append(data["status"])
        if data["status"] not in ("submitted", "processing"):
            break
        assert time.monotonic() < deadline, seen
        time.sleep(0.2)
    assert data["status"] == "completed", data
    assert set(seen) <= {"submitted", "processing", "completed"}
    assert "processing" in seen

    image_url = data["result"]["images"][0]["url"][0]
    assert image_url.startswith(slow_server.base_url + "/p/img/")
    image = requests.get(image_url, timeout=30)  # no key: the URL is the credential
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert decode_image(image.content).width == 2048


def test_native_urls_download_as_given(basic_server: Server) -> None:
    with httpx.Client(timeout=30) as client:
        r = client.post(f"{basic_server.base_url}/v1/images/generations",
                        json={"prompt": "absolute", "n": 2},
                        headers={"Authorization": f"Bearer {basic_server.key}"})
        assert r.status_code == 200, r.text
        for item in r.json()["data"]:
            assert item["url"].startswith(basic_server.base_url + "/p/img/")
            image = client.get(item["url"])
            assert image.status_code == 200 and image.content[:4] == b"\x89PNG"


def _url_with(server: Server, headers: dict[str, str]) -> str:
    r = httpx.post(f"{server.base_url}/v1/images/generations", json={"prompt": "fwd"},
                   headers={"Authorization": f"Bearer {server.key}", **headers}, timeout=30)
    assert r.status_code == 200, r.text
    url: str = r.json()["data"][0]["url"]
    return url


def test_forwarded_headers_from_trusted_and_untrusted_peers(
        basic_server: Server, module_server_factory: ServerFactory) -> None:
    # The test connects from 127.0.0.1: trusted by default ...
    assert _url_with(basic_server, FORWARDED).startswith("https://img.example.com/p/img/")
    # ... and a forged header from a peer nobody trusts changes nothing.
    untrusting = module_server_factory.start({"IMAGEGATE_TRUSTED_PROXIES": "[]"})
    assert _url_with(untrusting, FORWARDED).startswith(untrusting.base_url + "/p/img/")


def _taken_port() -> tuple[socket.socket, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    port: int = sock.getsockname()[1]
    return sock, port


def test_a_taken_port_stops_the_first_start_before_the_key(
        tmp_path: Path, server_factory: ServerFactory) -> None:
    data_dir = tmp_path / "data"
    holder, port = _taken_port()
    try:
        res = subprocess.run([IMAGEGATE, "serve", "--port", str(port), "--data-dir",
                              str(data_dir)], capture_output=True, text=True,
                             env=base_env(), timeout=60, check=False)
    finally:
        holder.close()
    assert res.returncode != 0
    assert "ig_" not in res.stdout + res.stderr  # no key was made, so none was shown
    assert f"cannot listen on 127.0.0.1:{port}" in res.stderr
    assert "--port" in res.stderr
    # The next start on a free port is still a first start: it shows the first key.
    server = server_factory.start(data_dir=data_dir)
    assert server.key.startswith("ig_")


def test_the_banner_spells_commands_as_they_are_typed(server_factory: ServerFactory) -> None:
    under_uv = server_factory.start({"UV": "/usr/local/bin/uv"})
    assert "Create more with `uv run imagegate keys create NAME`" in under_uv.output()
