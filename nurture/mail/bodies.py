"""A compiled step's body filled for one recipient: as text, and as quoted-printable.

Placeholders are ``%%name%%`` in the text and ``%%name|html%%`` in the HTML (the value
HTML-escaped there); ``%%name%%`` in the HTML is filled as it is (the links).
Quoted-printable works line by line, so a body's lines without a placeholder are
encoded once per step and only the others per recipient.
"""

from __future__ import annotations

import binascii
import html
import re

PLACEHOLDER = re.compile(r"%%([a-z_]+)(\|html)?%%")


def quoted_lines(body: str) -> list[str | list[str]]:
    """``body`` line by line (split as :func:`quoted_printable` splits it): runs of lines
    without a placeholder already encoded, and each line with one as its parts."""
    out: list[str | list[str]] = []
    plain: list[bytes] = []
    for line in body.encode("utf-8").splitlines():  # never inside a UTF-8 sequence
        text = line.decode("utf-8")
        if "%%" not in text or len(parts := PLACEHOLDER.split(text)) == 1:
            plain.append(line)
            continue
        if plain:
            out.append(quoted_printable_bytes(plain))
            plain = []
        out.append(parts)
    if plain or not out:  # an empty body is still one empty line
        out.append(quoted_printable_bytes(plain))
    return out


def fill_quoted(lines: list[str | list[str]], values: dict[str, str], for_html: bool) -> str:
    return "".join(
        line if isinstance(line, str) else quoted_printable(fill(line, values, for_html))
        for line in lines
    )


def fill(parts: list[str], values: dict[str, str], for_html: bool) -> str:
    # re.split with two groups yields [text, name, html_flag, text, name, html_flag, ...]
    out = [parts[0]]
    for i in range(1, len(parts), 3):
        name, is_html, rest = parts[i], parts[i + 1], parts[i + 2]
        value = values.get(name)
        if value is None:
            out.append(f"%%{name}{is_html or ''}%%")
        else:
            out.append(html.escape(value, quote=True) if is_html else value)
        out.append(rest)
    return "".join(out)


def quoted_printable(body: str) -> str:
    """``body`` as UTF-8 quoted-printable text, lines ending in ``\\n``, as set_content
    makes it."""
    return quoted_printable_bytes(body.encode("utf-8").splitlines())


def quoted_printable_bytes(lines: list[bytes]) -> str:
    # binascii's encoder (C) rather than email.quoprimime's: the same encoding, with
    # lines of at most 76 characters, RFC 2045's limit (set_content would use the
    # policy's 998, which is for headers here, and make lines some filters distrust).
    # It works line by line: lines encoded apart and joined are the same text.
    return binascii.b2a_qp(b"\n".join(lines) + b"\n", istext=True).decode("ascii")
