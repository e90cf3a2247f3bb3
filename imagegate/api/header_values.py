"""Reading structured header values (RFC 9110 lists and parameters): split on a separator
outside double-quoted strings, and unquote a quoted string. Shared by the multipart parser
(`Content-Disposition`, `Content-Type` parameters) and `Prefer` (`api/prefer.py`)."""

from __future__ import annotations


def split_unquoted(value: str, separator: str) -> list[str]:
    """`value` split on `separator` outside double-quoted strings (parts not stripped):
    `a; b="x;y"; c` on `;` → ["a", ' b="x;y"', " c"]."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def unquote(value: str) -> str:
    """A quoted string's content (surrounding whitespace dropped first); anything else as is.
    Only \\" and \\\\ are unescaped: browsers send Windows paths with bare backslashes."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value
