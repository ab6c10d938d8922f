"""The one definition of a ticker symbol, checked wherever a symbol enters closecast.

Symbols name directories (``lake/prices/symbol=S``, ``models/S``, ``work/S``), so a symbol from
a file, a download, a CLI flag or a deployment parameter is untrusted until it passes here.
"""

from __future__ import annotations

import re
import string

from tasks.core.errors import InputError

MAX_LENGTH = 15
# Letters, digits, '.', '-' and a leading '^' (indices): AAL, BRK.B, BRK-B, ^GSPC. ASCII only, so
# Unicode look-alikes (Cyrillic 'А', fullwidth 'Ａ') are refused rather than folded.
PATTERN = rf"^\^?[A-Z0-9][A-Z0-9.\-]{{0,{MAX_LENGTH - 1}}}$"
_VALID = re.compile(PATTERN)
RULE = ("valid symbol: 1-15 ASCII letters, digits, '.' or '-' (a leading '^' for an index), "
        "e.g. AAL, BRK.B, ^GSPC")
_UPPER = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)


def upper_ascii(text: str) -> str:
    """Upper-case ASCII letters only: ``str.upper`` would fold 'ı' to 'I' and 'ß' to 'SS'."""
    return text.translate(_UPPER)


def is_valid_symbol(symbol: object) -> bool:
    """True for an upper-case ticker as closecast stores it."""
    return isinstance(symbol, str) and _VALID.fullmatch(symbol) is not None


def normalize_symbol(text: str, where: str = "symbol") -> str:
    """Strip and upper-case (ASCII only) a user's symbol; InputError naming ``where`` if invalid."""
    symbol = upper_ascii(str(text).strip())
    if not is_valid_symbol(symbol):
        raise InputError(where, f"rule '{RULE}'", f"got {_shown(text)}")
    return symbol


def normalize_symbols(values: object, where: str = "--symbols") -> tuple[str, ...]:
    """A comma-separated string or a sequence of symbols, each checked; order kept, no repeats."""
    items = values.split(",") if isinstance(values, str) else list(values or ())
    symbols = [normalize_symbol(item, where) for item in items if str(item).strip()]
    return tuple(dict.fromkeys(symbols))


def shown_symbol(symbol: object) -> str:
    """A symbol from data for a log line: as it is when valid, else escaped and bounded."""
    return symbol if isinstance(symbol, str) and is_valid_symbol(symbol) else _shown(symbol)


def shown_symbols(symbols: object, limit: int = 20) -> str:
    """Symbols from data for a log line: printable, each bounded, at most ``limit`` listed."""
    items = list(symbols)
    text = ", ".join(shown_symbol(s) for s in items[:limit])
    return text + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _shown(text: object) -> str:
    """A safe, bounded rendering of an untrusted value (control characters escaped)."""
    shown = repr(str(text))
    return shown if len(shown) <= 80 else shown[:77] + "...'"
