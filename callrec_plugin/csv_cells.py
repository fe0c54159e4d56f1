"""Cells of the CSV files callrec hands out (audit trail, export bundles), safe to open in a spreadsheet."""

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(text):
    """``text`` with a leading apostrophe when a spreadsheet would otherwise run it as a formula."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text
