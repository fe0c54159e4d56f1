"""`flask callrec import` of files laid out exactly as Asterisk (cdr_csv) and FreePBX (callrecording)
write them: who handled each call, when it was, its numbers, and every surprise reported."""
import os

import pytest
import sqlalchemy as sa

from callrec_plugin.ingest import freepbx_import
from callrec_plugin.models import AuditEvent, ImportRun, Recording
from tests import pbx_tree
from tests.pbx_tree import CALLS, LEGACY, MISSING_UNIQUEID, NO_CDR, SWAPPED


def run(app, root, *extra, cdr=None):
    args = ["callrec", "import", str(root), "--practice", "pA", "--min-age", "0", *extra]
    if cdr is not None:
        args += ["--cdr", str(cdr)]
    return app.test_cli_runner().invoke(args=args)


def calls_by_name(db_session):
    return {r.source_ref: r for r in db_session.scalars(sa.select(Recording))}


@pytest.fixture
def swapping(monkeypatch, tmp_path):
    """Makes the import's walk swap one recording for a symbolic link after listing it."""
    def install(outside):
        monkeypatch.setattr(freepbx_import, "walk_tree", pbx_tree.swapping_walk(freepbx_import.walk_tree, outside))
    return install


def test_sample_cdr_conf_in_utc_every_call_right_and_every_surprise_reported(app, db_session, tmp_path, swapping):
    root, cdr, outside = pbx_tree.write_tree(tmp_path, usegmtime=True)
    swapping(outside)
    result = run(app, root, "--cdr-timezone", "UTC", cdr=cdr)
    out = result.output
    assert result.exit_code == 1, out  # something needs attention, and the exit status says so

    stored = calls_by_name(db_session)
    expected = [call for call in CALLS if call.name and not call.expect.get("swapped")]
    assert set(stored) == {call.name for call in expected}
    for call in expected:
        recording = stored[call.name]
        for key, value in call.expect.items():
            if key in ("no_cdr",):
                continue
            assert getattr(recording, key) == value, (call.name, key, getattr(recording, key), value)
    # The queue and ring-group calls name the agent who answered, never the queue's number.
    assert stored[CALLS[1].name].staff_name == "Handler" and stored[CALLS[2].name].staff_name == "Reception"
    # The two legs of the transfer are grouped by linkedid.
    transfer = {r.id for r in stored.values() if r.linkedid == CALLS[3].expect["linkedid"]}
    assert len(transfer) == 2

    assert f"ANSWERED call {MISSING_UNIQUEID}" in out and "has no recording in the folder" in out
    assert f"no CDR row for 2026/07/14/{NO_CDR}" in out
    assert SWAPPED in out and "symbolic link" in out and "not followed" in out
    assert f"skipped 2026/07/14/{LEGACY}: FreePBX 2.x recording name" in out
    assert "evil\\x1b[2Jname.wav" in out and "\x1b" not in out  # control characters escaped
    # Nothing about the transfer's consultation leg, which has its own recording, nor NO ANSWER rows.
    assert out.count("has no recording in the folder") == 1, out
    assert "time " not in out  # the CDR's zone was right: no time disagreements
    assert "9 plaintext recordings remain on the phone system" in out

    # The swapped-in link was never followed: the file outside the folder was not read.
    assert all(r.source_ref != SWAPPED for r in stored.values())
    run_row = db_session.scalars(sa.select(ImportRun)).one()
    assert (run_row.imported, run_row.originals_left, run_row.needs_attention) == (9, 9, True)
    assert db_session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(AuditEvent.action == "import")) == 1


def test_utc_cdr_read_as_local_time_is_reported_as_a_likely_time_zone_setting(app, db_session, tmp_path):
    root, cdr, _ = pbx_tree.write_tree(tmp_path, usegmtime=True)
    result = run(app, root, cdr=cdr)  # the operator forgot --cdr-timezone UTC
    warnings = [line for line in result.output.splitlines() if line.startswith("  time ")]
    assert len(warnings) == 9  # every recording with a CDR row
    assert all("1 h before the file name's time: a likely time-zone setting" in line for line in warnings)
    assert "--cdr-timezone UTC" in warnings[0]
    stored = calls_by_name(db_session)
    # Not silently resolved: the file name's own (local) time is stored, which is within seconds.
    first = CALLS[0]
    assert abs((stored[first.name].started_at - first.expect["started_at"]).total_seconds()) <= 5


def test_cdr_in_local_time_needs_no_setting(app, db_session, tmp_path):
    root, cdr, _ = pbx_tree.write_tree(tmp_path, usegmtime=False)
    result = run(app, root, cdr=cdr)
    assert "  time " not in result.output, result.output
    stored = calls_by_name(db_session)
    for call in CALLS:
        if call.name in stored and "started_at" in call.expect:
            assert stored[call.name].started_at == call.expect["started_at"], call.name


def test_sample_cdr_without_newcdrcolumns_still_matches_every_call(app, db_session, tmp_path):
    root, cdr, _ = pbx_tree.write_tree(tmp_path, usegmtime=True, newcdrcolumns=False)  # 18 columns
    result = run(app, root, "--cdr-timezone", "UTC", cdr=cdr)
    stored = calls_by_name(db_session)
    assert stored[CALLS[1].name].staff_user_ref == "handler"
    assert stored[CALLS[0].name].caller_name == "Hughes, Margaret" and stored[CALLS[0].name].linkedid is None
    assert [line for line in result.output.splitlines() if "CDR line" in line] == [
        line for line in result.output.splitlines() if f"ANSWERED call {MISSING_UNIQUEID}" in line]


def test_unknown_practice_is_a_clear_error_and_nothing_is_imported(app, db_session, tmp_path):
    root, cdr, _ = pbx_tree.write_tree(tmp_path)
    result = app.test_cli_runner().invoke(args=["callrec", "import", str(root), "--practice", "nope",
                                                "--min-age", "0", "--cdr", str(cdr)])
    assert result.exit_code == 2 and "unknown practice 'nope'" in result.output
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Recording)) == 0
    assert os.listdir(app.config["CALLREC_STORAGE_DIR"]) == [] if os.path.isdir(app.config["CALLREC_STORAGE_DIR"]) else True


def test_a_deep_tree_is_walked_without_recursion(tmp_path):
    from callrec_plugin.ingest.freepbx import walk_tree

    fd = os.open(tmp_path, os.O_RDONLY)
    for _ in range(1100):  # deeper than Python's default recursion limit of 1000
        os.mkdir("d", dir_fd=fd)
        next_fd = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = next_fd
    with open(os.open("in-1-2-20260714-101500-1.2.wav", os.O_WRONLY | os.O_CREAT, dir_fd=fd), "wb") as deepest:
        deepest.write(b"x")
    os.close(fd)
    try:
        results = list(walk_tree(tmp_path))
    finally:
        _remove_deep(tmp_path, 1100)  # pytest's own clean-up of old temporary folders recurses
    assert len(results) == 1
    assert "YYYY/MM/DD" in results[0][1].reason  # found at depth 1100, and refused for its folder


def _remove_deep(top, depth):
    for level in range(depth, 0, -1):
        folder = os.path.join(top, *["d"] * level)
        for name in os.listdir(folder):
            if name != "d":
                os.unlink(os.path.join(folder, name))
        os.rmdir(folder)


def test_staff_remap_fills_calls_imported_before_the_mapping_existed(app, db_session, tmp_path, login, monkeypatch):
    from tests import hostapp

    root, cdr, _ = pbx_tree.write_tree(tmp_path)
    run(app, root, "--cdr-timezone", "UTC", cdr=cdr)
    page = login("manager").get("/callrec/staff/unmapped")
    assert page.status_code == 200 and "<td>203</td><td>2</td>" in page.get_data(as_text=True)
    assert login("reception").get("/callrec/staff/unmapped").status_code == 403

    monkeypatch.setitem(hostapp.STAFF_EXTENSIONS, ("pA", "203"), "trainer")
    result = app.test_cli_runner().invoke(args=["callrec", "staff", "remap", "--since", "2026-07-01"])
    assert "2 calls given their member of staff" in result.output, result.output
    transfer = [r for r in db_session.scalars(sa.select(Recording)) if r.staff_extension == "203"]
    assert {(r.staff_user_ref, r.staff_name) for r in transfer} == {("trainer", "Trainer")}
    assert "<td>203</td>" not in login("manager").get("/callrec/staff/unmapped").get_data(as_text=True)


def test_a_calls_page_shows_the_cdr_facts_and_the_other_legs_of_a_transfer(app, db_session, tmp_path, login):
    root, cdr, _ = pbx_tree.write_tree(tmp_path)
    run(app, root, "--cdr-timezone", "UTC", cdr=cdr)
    stored = calls_by_name(db_session)
    transfer, consultation = stored[CALLS[3].name], stored[CALLS[4].name]
    page = login("reception").get(f"/callrec/recordings/{transfer.id}").get_data(as_text=True)
    assert "Fletcher, Thomas" in page and f"/callrec/recordings/{consultation.id}" in page
    first = login("reception").get(f"/callrec/recordings/{stored[CALLS[0].name].id}").get_data(as_text=True)
    assert "surgery" in first and "new-patient" in first and "Hughes, Margaret" in first
    emergency = login("manager").get(f"/callrec/recordings/{stored[CALLS[6].name].id}").get_data(as_text=True)
    assert "999 (emergency services)" in emergency
    other_practice = login("receptionB").get(f"/callrec/recordings/{transfer.id}")
    assert other_practice.status_code == 404


def test_the_python_api_maps_the_extension_and_refuses_an_unknown_practice(app, db_session):
    import datetime as dt
    import io

    from callrec_plugin.ingest import IngestError, ingest_audio
    from tests.audio_samples import wav_bytes

    with app.test_request_context():
        result = ingest_audio(io.BytesIO(wav_bytes(3.0)), practice_ref="pA", direction="inbound",
                              started_at=dt.datetime(2026, 7, 14, 8, 0, tzinfo=dt.timezone.utc),
                              from_number="07700900001", to_number="202", source="mypbx", source_ref="c-1",
                              staff_extension="202", caller_name="Hughes, Margaret", linkedid="c-1")
        recording = db_session.get(Recording, result.recording_id)
        assert (recording.staff_user_ref, recording.staff_name) == ("handler", "Handler")
        assert recording.caller_name == "Hughes, Margaret" and recording.linkedid == "c-1"
        with pytest.raises(IngestError, match="unknown practice 'nope'"):
            ingest_audio(io.BytesIO(wav_bytes(3.0)), practice_ref="nope", direction="inbound",
                         started_at=dt.datetime(2026, 7, 14, 8, 0, tzinfo=dt.timezone.utc), from_number=None,
                         to_number=None, source="mypbx", source_ref="c-2")
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Recording)) == 1
