"""Named connection profiles in client.toml: where the file is, what it may hold, and the
refusals for a file that is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagegate.client import InputError, Profile, load_profiles, profile_named
from imagegate.client.profiles import config_path


def test_where_the_file_is(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("IMAGEGATE_CLIENT_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config_path() == tmp_path / "imagegate" / "client.toml"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config_path() == tmp_path / ".config" / "imagegate" / "client.toml"
    monkeypatch.setenv("IMAGEGATE_CLIENT_CONFIG", str(tmp_path / "x.toml"))
    assert config_path() == tmp_path / "x.toml"


def test_profiles_are_read(tmp_path: Path) -> None:
    path = tmp_path / "client.toml"
    path.write_text('default = "local"\n[profiles.local]\nurl = "http://127.0.0.1:8000"\n'
                    'api_key = "ig_x"\n[profiles.dimi]\nurl = "https://d.example"\n'
                    'dialect = "dimilinks"\n')
    default, profiles = load_profiles(path)
    assert default == "local"
    assert profiles["dimi"] == Profile("dimi", "https://d.example", None, "dimilinks")
    assert profile_named("local", path).api_key == "ig_x"
    assert load_profiles(tmp_path / "none.toml") == (None, {})


@pytest.mark.parametrize(("text", "message"), [
    ("not toml = ", "is not valid TOML"),
    ("[profiles.a]\nurl = 3\n", r"\[profiles.a\] url must be a string"),
    ("[profiles.a]\nkey = 'x'\n", r"unknown keys \['key'\]"),
    ("profiles = 3\n", r"\[profiles.NAME\] tables"),
])
def test_a_wrong_file_is_an_input_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "client.toml"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        load_profiles(path)


def test_an_unknown_profile_names_the_known_ones(tmp_path: Path) -> None:
    path = tmp_path / "client.toml"
    path.write_text("[profiles.a]\n[profiles.b]\n")
    with pytest.raises(InputError, match=r"no profile 'c' in .*client.toml \(profiles: a, b\)"):
        profile_named("c", path)
