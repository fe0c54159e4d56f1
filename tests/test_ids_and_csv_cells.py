"""Ids people copy around and CSV cells people open in a spreadsheet."""
import csv
import io

from hypothesis import given, strategies as st

from callrec_plugin.csv_cells import FORMULA_PREFIXES, safe_cell
from callrec_plugin.models import ID_ALPHABET, new_id


def test_ids_are_letters_and_digits_so_no_spreadsheet_or_shell_reads_them_otherwise():
    ids = [new_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 22 and set(i) <= set(ID_ALPHABET) for i in ids)
    assert not any(i.startswith(FORMULA_PREFIXES) for i in ids)
    assert safe_cell(ids[0]) == ids[0]


@given(st.text())
def test_a_safe_cell_never_starts_a_formula_and_loses_nothing(text):
    cell = safe_cell(text)
    assert not cell.startswith(FORMULA_PREFIXES)
    if text.startswith(FORMULA_PREFIXES) or text.lstrip().startswith(FORMULA_PREFIXES):  # blanks first too
        assert cell == "'" + text
    else:
        assert cell in (text, "'" + text)  # also after invisible format characters (tests/test_input_validation.py)


@given(st.lists(st.text(), min_size=1, max_size=5))
def test_safe_cells_read_back_from_csv_exactly_as_written(row):
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\r\n").writerow([safe_cell(value) for value in row])
    (read_back,) = list(csv.reader(io.StringIO(buffer.getvalue(), newline="")))
    assert read_back == [safe_cell(value) for value in row]
