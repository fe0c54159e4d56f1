"""Phone numbers in the CSVs people open in a spreadsheet (the call log's, a bundle's calls.csv) read as
the practice dials them, with no apostrophe in front; a foreign number keeps its "+" and the CSV
neutraliser's mark, because a spreadsheet would run a cell starting with "+"."""
import csv
import io
import zipfile

import pytest

from callrec_plugin.csv_cells import safe_cell
from callrec_plugin.ingest.numbers import number_for_spreadsheet
from tests import jobs_support as js
from tests.factories import add_recording
from tests.test_exports import add_calls, bundle_of


@pytest.mark.parametrize("stored,cell", [
    ("+447700900001", "07700 900001"),      # Ofcom drama mobile range (invalid to phonenumbers, accepted here)
    ("+442079460123", "020 7946 0123"),
    ("+441134960000", "0113 496 0000"),
    ("+448001111111", "0800 111 1111"),
    ("+33123456789", "'+33 1 23 45 67 89"),  # abroad: international, and neutralised
    ("+12025550123", "'+1 202-555-0123"),
    ("ext:201", "extension 201"),
    ("service:999", "999 (emergency services)"),
    ("withheld", "withheld"),
    (None, ""),
])
def test_a_stored_number_as_a_spreadsheet_cell(stored, cell):
    assert safe_cell(number_for_spreadsheet(stored, "GB")) == cell


def test_another_region_reads_its_own_numbers_nationally():
    assert number_for_spreadsheet("+33123456789", "FR") == "01 23 45 67 89"
    assert safe_cell(number_for_spreadsheet("+447700900001", "FR")) == "'+44 7700 900001"


def _rows(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_the_call_log_csv_has_numbers_as_dialled_without_an_apostrophe(app, db_session, login):
    add_recording(db_session, external_number="+447700900001")
    add_recording(db_session, external_number="+33123456789")
    text = login("manager").get("/callrec/calls.csv").get_data(as_text=True)
    numbers = sorted(row["Number"] for row in _rows(text))
    assert numbers == ["'+33 1 23 45 67 89", "07700 900001"]


def test_a_bundle_calls_csv_has_numbers_as_dialled_and_its_manifest_e164(app, db_session, login):
    add_calls(db_session, js.Blobs(app), "pat1", 2)  # from +447700900001 to extension 201 (jobs_support)
    client = login("dpo")
    data = bundle_of(client, js.request_bundle(client, app, "pat1"))
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        rows = _rows(bundle.read("calls.csv").decode())
        manifest = bundle.read("manifest.json").decode()
    assert {row["from_number"] for row in rows} == {"07700 900001"}
    assert not any(value.startswith("'") for row in rows for value in (row["from_number"], row["to_number"]))
    assert '"from_number": "+447700900001"' in manifest
