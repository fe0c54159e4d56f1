"""Cells of the CSV files callrec hands out (audit trail, call log, export bundles), safe to open in a
spreadsheet. Every CSV cell callrec writes goes through :func:`safe_cell`."""
import unicodedata

# A spreadsheet runs a cell as a formula when its first visible character is one of these (CSV
# injection). Excel and LibreOffice skip leading blanks first, and read the full-width forms (＝ ＋ －
# ＠, U+FF1D, U+FF0B, U+FF0D, U+FF20, as an East Asian keyboard types them) as the ASCII ones.
FORMULA_STARTS = frozenset("=+-@\uff1d\uff0b\uff0d\uff20")
# A cell starting with one of these is split or run by some importers whatever follows.
LEADING_CONTROLS = frozenset("\t\r\n")
# What a neutralised cell can never start with (its apostrophe comes first).
FORMULA_PREFIXES = tuple(sorted(FORMULA_STARTS | LEADING_CONTROLS))


def _first_visible(text):
    """The first character that is neither blank nor an invisible format character (U+200B, U+FEFF…)."""
    for char in text:
        if not (char.isspace() or unicodedata.category(char) == "Cf"):
            return char
    return ""


def safe_cell(text):
    """``text`` with a leading apostrophe when a spreadsheet would otherwise run it as a formula."""
    if text[:1] in LEADING_CONTROLS or _first_visible(text) in FORMULA_STARTS:
        return "'" + text
    return text
