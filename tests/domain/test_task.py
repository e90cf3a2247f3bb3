"""Task identifiers."""

from __future__ import annotations

import os

from imagegate.domain.task import new_owner_id


def test_a_lease_owner_names_its_pid_readably() -> None:
    """`<host>-<pid>-<token>`, read from the right: the token never holds a `-` (a base64
    token did one time in five and the pid could not be read back)."""
    for _ in range(500):
        _host, pid, token = new_owner_id().rsplit("-", 2)
        assert int(pid) == os.getpid() and token.isalnum()
