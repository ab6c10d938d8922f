"""Markdown for Prefect artifacts and reports, with every data-derived string escaped.

A file name, a symbol or an example row is untrusted: in a fenced block it must not close the
fence, and in running text or a table cell it must not become a link, an image or raw HTML.
"""

from __future__ import annotations

import html
import re

_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~>-])")


def escape(text: object) -> str:
    """Text that Markdown shows literally: HTML-escaped, punctuation backslash-escaped, one line."""
    flat = " ".join(str(text).split())
    return _SPECIAL.sub(r"\\\1", html.escape(flat, quote=False))


def code_block(text: str, language: str = "") -> str:
    """A fenced block whose fence is longer than any backtick run inside, so it cannot close."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"
