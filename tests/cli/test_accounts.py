"""The refusals `imagegate keys …` and `imagegate usage` share (accounts.py): one line on
stderr, exit status 1, nothing written."""

from __future__ import annotations

import pytest

from tests.support.cli import Cli


@pytest.mark.parametrize(
    ("args", "message"),
    [(("keys", "topup", "{id}", "-3"), "must not be negative"),
     (("keys", "topup", "{id}", "ten"), "must be a decimal number"),
     (("keys", "topup", "{id}", "0"), "greater than 0"),
     (("keys", "topup", "{id}", "0.0000001"), "more than 6 decimal places"),
     (("keys", "topup", "key_nope", "5"), "No API key with id 'key_nope'"),
     (("keys", "adjust", "{id}", "-99", "--note", "x"), "below 0"),
     (("keys", "rotate", "key_nope"), "No API key"),
     (("keys", "revoke", "key_nope"), "No API key"),
     (("keys", "create", "x", "--balance", "-1"), "must not be negative"),
     (("keys", "create", "x", "--balance", "1,5"), "decimal number"),
     (("keys", "create", "x", "--models", "nope"), "unknown model(s): nope"),
     (("keys", "create", "x", "--webhook-url", "ftp://h/x"), "http or https"),
     (("keys", "create", "x", "--expires", "soonish"), "expires must be"),
     (("keys", "create",), "a name is needed"),
     (("usage", "--since", "last tuesday"), "since must be"),
     (("usage", "--since", "1d", "--until", "2d"), "until must be later"),
     (("usage", "--key", "key_nope"), "No API key")],
)
def test_bad_input_is_one_line_and_exit_1(run: Cli, args: tuple[str, ...],
                                          message: str) -> None:
    kid = run.json("keys", "create", "base", "--balance", "2")["id"]
    before = run.sql("SELECT * FROM api_keys"), run.sql("SELECT * FROM ledger")
    result = run(*(a.replace("{id}", kid) for a in args), code=1)
    assert message in result.stderr and result.stderr.startswith("error:")
    assert len(result.stderr.strip().splitlines()) == 1
    assert (run.sql("SELECT * FROM api_keys"), run.sql("SELECT * FROM ledger")) == before
