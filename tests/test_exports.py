"""Subject-access and disclosure bundles: contents, verification, permissions, expiry, audit, progress."""
import csv
import datetime as dt
import hashlib
import io
import json
import os
import tracemalloc
import zipfile

import sqlalchemy as sa

from callrec_plugin import exports
from callrec_plugin.models import (
    AuditEvent,
    Disclosure,
    Export,
    Job,
    PatientObjection,
    Recording,
    Tombstone,
    utcnow,
)
from tests import jobs_support as js
from tests.conftest import valid_csrf_token
from tests.subject_access_support import register_by_form, registered

NOW = utcnow()


def add_calls(db_session, blobs, patient_ref, count, size=20_000, practice_ref="pA", days_ago=1):
    rows = []
    for n in range(count):
        row = js.recording_row(NOW - dt.timedelta(days=days_ago + n % 150, minutes=n), practice_ref=practice_ref,
                               patient_ref=patient_ref)
        row.update(blobs.write(row["id"], os.urandom(size + n)))
        rows.append(row)
    db_session.execute(sa.insert(Recording), rows)
    db_session.commit()
    return [row["id"] for row in rows]


def add_metadata_only(db_session, count, patients=("pat2", "pat9", None)):
    rows = [js.recording_row(NOW - dt.timedelta(days=1 + n % 170, seconds=n), patient_ref=patients[n % len(patients)])
            for n in range(count)]
    for start in range(0, len(rows), 1000):
        db_session.execute(sa.insert(Recording), rows[start:start + 1000])
    db_session.commit()


def bundle_of(client, export_id):
    response = client.get(f"/callrec/exports/{export_id}/download")
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.headers["Content-Type"] == "application/zip"
    assert response.headers["Cache-Control"] == "private, no-store"
    return response.data


def test_subject_access_bundle_holds_exactly_the_patients_50_calls_among_5000(
        app, db_session, login, tmp_path):
    blobs = js.Blobs(app)
    theirs = add_calls(db_session, blobs, "pat1", 50)
    add_metadata_only(db_session, 4950)
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Recording)) == 5000
    db_session.add(Tombstone(recording_id="gone-call-0001", practice_ref="pA", patient_ref="pat1",
                             started_at=NOW - dt.timedelta(days=200), retain_until=NOW - dt.timedelta(days=17),
                             purged_at=NOW - dt.timedelta(days=16), reason="retention expired"))
    db_session.add(PatientObjection(practice_ref="pA", patient_ref="pat1", note="did not want to be recorded",
                                    recorded_by_ref="reception", recorded_by_name="Reception"))
    db_session.commit()
    # someone listened to one of their calls, and to another patient's
    from callrec_plugin import audit
    from callrec_plugin.identity import Actor

    owner = Actor(user=None, ref="owner", name="Owner", roles=frozenset({"owner"}), practice_ref="pA")
    audit.record("play", "allowed", actor=owner, recording=db_session.get(Recording, theirs[3]), purpose="compliance")
    other = db_session.scalar(sa.select(Recording).where(Recording.patient_ref == "pat2").limit(1))
    audit.record("play", "allowed", actor=owner, recording=other, purpose="compliance")
    db_session.commit()

    client = login("dpo")
    export_id = js.request_bundle(client, app, "pat1")  # no Redis configured: built in-process
    db_session.expire_all()
    export = db_session.get(Export, export_id)
    assert export.status == "ready" and export.progress_done == export.progress_total == 50
    data = bundle_of(client, export_id)
    assert export.sha256 == hashlib.sha256(data).hexdigest()
    names = js.unpack_and_verify(data, tmp_path)
    calls = [name for name in names if name.startswith("calls/")]
    assert len(calls) == 50
    assert {name.split("_", 2)[2].rsplit(".", 1)[0] for name in calls} == set(theirs)
    for expected in ("cover-note.txt", "calls.csv", "objections.csv", "audit-extract.csv", "manifest.json",
                     "SHA256SUMS"):
        assert expected in names
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        manifest = json.loads(bundle.read("manifest.json"))
        assert {call["recording_id"] for call in manifest["calls"]} == set(theirs)
        assert [d["recording_id"] for d in manifest["deleted_calls"]] == ["gone-call-0001"]
        assert manifest["patient"] == {"ref": "pat1", "name": "Ada Patient"}
        recording = db_session.get(Recording, theirs[7])
        from callrec_plugin.playback import open_plaintext

        with open_plaintext(recording) as reader:
            entry = next(c["file"] for c in manifest["calls"] if c["recording_id"] == theirs[7])
            assert bundle.read(entry) == reader.read()
        audit_rows = list(csv.DictReader(io.StringIO(bundle.read("audit-extract.csv").decode())))
        touched = {row["recording_id"] for row in audit_rows if row["recording_id"]}
        assert theirs[3] in touched and other.id not in touched
        # who, in role terms, for which purpose and when: no names, IP addresses or reasons (issue 9)
        assert not {"ip", "actor_name", "actor_ref", "reason", "justification"} & set(audit_rows[0])
        assert {(row["accessed_by"], row["purpose"]) for row in audit_rows if row["recording_id"] == theirs[3]} \
            == {("practice owner", "compliance")}
        objections = list(csv.DictReader(io.StringIO(bundle.read("objections.csv").decode())))
        assert [o["note"] for o in objections] == ["did not want to be recorded"]
        note = bundle.read("cover-note.txt").decode()
        assert "Ada Patient" in note and "sha256sum -c SHA256SUMS" in note and "50 recordings" in note


def test_export_permissions_requester_only_download_audit_and_expiry(app, db_session, login):
    blobs = js.Blobs(app)
    add_calls(db_session, blobs, "pat1", 3)
    assert login("reception").get("/callrec/exports").status_code == 403
    assert login("trainer").get("/callrec/exports").status_code == 403
    reception = login("reception")
    entry = registered(db_session, "pat1", by="owner")
    response = reception.post("/callrec/exports", data={"subject_access_id": entry.id,
                                                        "csrf_token": valid_csrf_token(app, reception)})
    assert response.status_code == 403
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Export)) == 0

    owner = login("owner")
    assert owner.get("/callrec/exports").status_code == 200
    response = register_by_form(owner, app, "patB")
    assert response.status_code == 404  # another practice's patient looks like no patient
    export_id = js.request_bundle(owner, app, "pat1")
    assert bundle_of(owner, export_id)[:2] == b"PK"
    bundle_of(owner, export_id)
    assert login("manager").get(f"/callrec/exports/{export_id}/download").status_code == 403
    assert login("ownerB").get(f"/callrec/exports/{export_id}").status_code == 404

    events = db_session.scalars(sa.select(AuditEvent).where(AuditEvent.object_id == export_id)
                                .order_by(AuditEvent.seq)).all()
    summary = [(e.action, e.outcome, e.actor_ref) for e in events]
    assert ("export_requested", "done", "owner") in summary
    assert ("export_ready", "done", "system") in summary
    assert summary.count(("export_download", "done", "owner")) == 2
    assert ("export_download", "denied", "manager") in summary
    assert [e for e in summary if e[2] == "manager"] == [("export_download", "denied", "manager")]

    export = db_session.get(Export, export_id)
    export.expires_at = utcnow() - dt.timedelta(minutes=1)
    db_session.commit()
    assert owner.get(f"/callrec/exports/{export_id}/download").status_code == 410
    assert exports.expire_due() == 1
    db_session.expire_all()
    export = db_session.get(Export, export_id)
    assert export.status == "expired" and not js.Blobs(app).exists(export.storage_key)
    assert owner.get(f"/callrec/exports/{export_id}/download").status_code == 410


def test_a_bundle_being_built_shows_progress_and_cannot_be_downloaded(app, db_session, login):
    export = Export(practice_ref="pA", kind="subject_access", patient_ref="pat1", requested_by_ref="dpo",
                    status="building", progress_done=3, progress_total=8)
    db_session.add(export)
    db_session.commit()
    db_session.add(Job(kind="export", practice_ref="pA", object_id=export.id, status="running",
                       progress_done=3, progress_total=8))
    db_session.commit()
    client = login("dpo")
    page = client.get(f"/callrec/exports/{export.id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.headers["Refresh"] == "5"
    assert '<progress id="callrec-export-progress" max="8" value="3">' in html and "3 of 8 calls" in html
    assert "style=" not in html and "<script" not in html
    assert "Refresh" not in client.get(f"/callrec/exports/{export.id}?refresh=off").headers
    assert client.get(f"/callrec/exports/{export.id}/download").status_code == 409
    jobs_page = login("owner").get("/callrec/jobs").get_data(as_text=True)
    assert 'max="8" value="3"' in jobs_page


def disclose(client, app, recording_ids, **fields):
    data = {"recipient": "Greater Manchester Police, DC Smith", "recipient_kind": "law_enforcement",
            "legal_basis": "DPA 2018 Schedule 2 paragraph 2: prevention and detection of crime",
            "reference": "GMP/2026/0042", "recordings": "\n".join(recording_ids),
            "csrf_token": valid_csrf_token(app, client)}
    data.update(fields)
    return client.post("/callrec/disclosures", data=data)


def test_disclosure_needs_two_different_people_and_is_in_the_register(app, db_session, login, tmp_path):
    blobs = js.Blobs(app)
    calls = add_calls(db_session, blobs, "pat1", 4)
    dpo = login("dpo")
    assert disclose(dpo, app, calls[:2], recipient_kind="press").status_code == 400
    assert disclose(dpo, app, ["nosuchcall-123"]).status_code == 404
    response = disclose(dpo, app, calls[:2] + [f"http://pms.example/callrec/recordings/{calls[2]}"])
    assert response.status_code == 302
    disclosure = db_session.scalar(sa.select(Disclosure))
    assert disclosure.status == "requested" and db_session.scalar(sa.select(sa.func.count()).select_from(Export)) == 0

    def decide(client, action="approve"):
        return client.post(f"/callrec/disclosures/{disclosure.id}/{action}",
                           data={"csrf_token": valid_csrf_token(app, client)})

    assert decide(dpo).status_code == 403  # the requester cannot approve (and a DPO approves nothing)
    assert decide(login("reception")).status_code == 403
    db_session.expire_all()
    assert db_session.get(Disclosure, disclosure.id).status == "requested"
    assert decide(login("owner")).status_code == 302
    db_session.expire_all()
    disclosure = db_session.get(Disclosure, disclosure.id)
    assert (disclosure.status, disclosure.approved_by_ref, disclosure.requested_by_ref) == ("approved", "owner", "dpo")
    assert decide(login("manager")).status_code == 409  # decided once only
    export = db_session.get(Export, disclosure.export_id)
    assert export.status == "ready" and export.requested_by_ref == "dpo"
    assert login("owner").get(f"/callrec/exports/{export.id}/download").status_code == 403
    names = js.unpack_and_verify(bundle_of(dpo, export.id), tmp_path)
    assert len([n for n in names if n.startswith("calls/")]) == 3 and "disclosure.json" in names
    with zipfile.ZipFile(io.BytesIO(bundle_of(dpo, export.id))) as bundle:
        entry = json.loads(bundle.read("disclosure.json"))
        assert entry["reference"] == "GMP/2026/0042" and entry["approved_by"]["ref"] == "owner"
        assert entry["requested_by"]["ref"] == "dpo" and sorted(entry["recordings"]) == sorted(calls[:3])
        actions = {row["action"] for row in csv.DictReader(io.StringIO(bundle.read("audit-extract.csv").decode()))}
        assert {"disclosure_requested", "disclosure_approved"} <= actions

    # a second request, refused; same-person approval refused; the register lists both
    manager = login("manager")
    assert disclose(manager, app, [calls[3]], recipient="Care Quality Commission", recipient_kind="regulator",
                    reference="CQC-77").status_code == 302
    second = db_session.scalar(sa.select(Disclosure).where(Disclosure.reference == "CQC-77"))
    assert manager.post(f"/callrec/disclosures/{second.id}/approve",
                        data={"csrf_token": valid_csrf_token(app, manager)}).status_code == 403
    owner = login("owner")
    assert owner.post(f"/callrec/disclosures/{second.id}/refuse",
                      data={"csrf_token": valid_csrf_token(app, owner), "reason": "no legal basis"}).status_code == 302
    register = login("dpo").get("/callrec/disclosures").get_data(as_text=True)
    assert "GMP/2026/0042" in register and "CQC-77" in register and "Refused" in register and "Approved" in register
    assert "<caption>2 disclosures, newest first</caption>" in register
    assert login("reception").get("/callrec/disclosures").status_code == 403
    assert login("ownerB").get(f"/callrec/disclosures/{second.id}").status_code == 404


def test_bundle_memory_stays_flat_as_the_bundle_grows(app, db_session):
    """Peak Python allocations while building: a bundle 16 times larger needs no more memory."""
    blobs = js.Blobs(app)
    small = add_calls(db_session, blobs, "pat1", 4, size=256 * 1024)
    large = add_calls(db_session, blobs, "pat2", 16, size=1024 * 1024)
    assert small and large
    from callrec_plugin.identity import Actor

    dpo = Actor(user=None, ref="dpo", name="Dpo", roles=frozenset({"dpo"}), practice_ref="pA")
    peaks = []
    for patient in ("pat1", "pat2"):
        export, _job = exports.request_subject_access(dpo, registered(db_session, patient))
        tracemalloc.start()
        exports.build_export(export.id)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < peaks[0] + 1024 * 1024, peaks  # 16 MiB more audio, under 1 MiB more memory
    assert peaks[1] < 4 * 1024 * 1024, peaks


def test_a_built_bundle_is_encrypted_at_rest(app, db_session, login):
    from callrec_plugin.crypto import MAGIC

    add_calls(db_session, js.Blobs(app), "pat1", 3)
    owner = login("owner")
    export_id = js.request_bundle(owner, app, "pat1")
    export = db_session.get(Export, export_id)
    stored = js.Blobs(app).path(export.storage_key)
    with open(stored, "rb") as blob:
        assert blob.read(len(MAGIC)) == MAGIC
    for folder, _, files in os.walk(app.config["CALLREC_STORAGE_DIR"]):
        for name in files:
            with open(os.path.join(folder, name), "rb") as blob:
                data = blob.read()
            assert b"PK\x03\x04" not in data and b"manifest.json" not in data and b"RIFF" not in data, name
    assert bundle_of(owner, export_id)[:4] == b"PK\x03\x04"  # and it decrypts to the ZIP
