"""Fuzzing every callrec route: no input gives a 5xx, and a refused request writes nothing.

The routes come from the app's url_map and the field names from callrec's forms (and the query
arguments its views read), so a new route or field is fuzzed without anyone listing it here. Each
route gets its share of ROUTE_REQUESTS generated requests, as each of a few users (and nobody).
The ingest API gets its own generator (headers, multipart structure, metadata), and the audio and
bundle downloads one for Range and If-Range. Examples are derandomised: CI runs the same requests
every time, and a failure names the route and the request that broke it.

"A refused request writes nothing": any answer of 400 or more leaves every callrec table as it
was (only the audit trail may grow: a refusal is an access decision, and decisions are audited;
and the nonce store of a signed request whose signature held), and the storage directory untouched.
"""
import importlib
import io
import json
import math
import os
import pkgutil
import re
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from werkzeug.routing import BuildError
from wtforms.fields.core import UnboundField

import callrec_plugin
from callrec_plugin.ingest import ingest_audio
from callrec_plugin.ingest.signing import signed_headers
from callrec_plugin.models import AccessGrant, AuditEvent, metadata
from callrec_plugin.models import utcnow
from tests.audio_samples import wav_bytes
from tests.conftest import csrf_from, valid_csrf_token

from tests.hostapp import database_url

# Generated across all routes (a few are skipped: a URL that cannot be built); the bar is 5,000 on the
# SQLite run of `make test`. The PostgreSQL run sends fewer (each costs round trips): it is there for
# what only PostgreSQL refuses (32-bit INTEGER ids, NUL in text). CALLREC_FUZZ_REQUESTS sends more.
ON_SQLITE = database_url().startswith("sqlite")
ROUTE_REQUESTS = int(os.environ.get("CALLREC_FUZZ_REQUESTS") or (5500 if ON_SQLITE else 1500))
INGEST_REQUESTS = 400
RANGE_REQUESTS = 300
SECRET = "fuzz-secret-for-practice-A"
API_PATH = "/callrec/api/recordings"
USERS = ("owner", "manager", "handler", "trainer", "reception", "dpo", "ownerB", None)
# Rows a refused request may still add: its own audit event, and the nonce of a verified signature.
MAY_GROW_WHEN_REFUSED = {AuditEvent.__tablename__, "callrec_api_nonces"}
COUNTS = {}


def _fuzz_settings(examples):
    return settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck), print_blob=True)


@pytest.fixture
def app_config(app_config):
    return dict(app_config, CALLREC_API_SECRETS={"pA": SECRET})


# -- what is fuzzed, read from the code -------------------------------------------------------------


def _callrec_modules():
    for info in pkgutil.walk_packages(callrec_plugin.__path__, "callrec_plugin."):
        yield importlib.import_module(info.name)


def form_field_names():
    """Every field name of every form in callrec, plain and with the prefixes the views give them."""
    from flask_wtf import FlaskForm

    names, seen, pending = set(), set(), [FlaskForm]
    for _ in _callrec_modules():
        pass
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.add(sub)
                pending.append(sub)
                names.update(name for name in dir(sub) if isinstance(getattr(sub, name, None), UnboundField))
    source = "\n".join(p.read_text() for p in Path(callrec_plugin.__file__).parent.rglob("*.py"))
    prefixes = set(re.findall(r'prefix="([a-z-]+?)-?"', source))
    names |= {f"{prefix}-{name}" for prefix in prefixes for name in names}
    return sorted(names)


def query_argument_names():
    source = "\n".join(p.read_text() for p in Path(callrec_plugin.__file__).parent.rglob("*.py"))
    return sorted(set(re.findall(r'request\.args(?:\.get|\.getlist)?[\(\[]"([a-z_]+)"', source))
                  | {"page", "callrec_page", "callrec_from", "callrec_to", "callrec_number"})


NASTY = ["", " ", "0", "-1", "1" + "0" * 30, "9" * 400, "1e309", "nan", "9999-12-31", "0001-01-01", "2026-02-30",
         "2026-11-30T09:15:00+00:00", "\x00", "a\x00b", "\u202eevil", "\ufeff=cmd", "＝1+1", "../../etc/passwd",
         "<script>alert(1)</script>", "' OR 1=1 --", "%", "_", "null", "[]", "{}", "x" * 5000, "é" * 300,
         "compliance", "complaint", "training", "spot_check", "safety_crime", "play", "download", "patient",
         "recording", "on", "true", "investigation", "regulator", "police", "open", "closed", "queued", "failed",
         "pat1", "patB", "cX", "cY", "cB", "+447700900001", "07700900001", "201", "\ud7ff", "\U0010ffff"]


def values(real_ids):
    return st.one_of(
        st.sampled_from(NASTY + real_ids),
        st.text(max_size=30),
        st.integers(-(10**40), 10**40).map(str),
        st.dates().map(str),
    )


def snapshot(session, storage):
    """Row counts of every callrec table in one statement, and the files in storage."""
    tables = [t for t in metadata.sorted_tables if t.name.startswith("callrec_")]
    counts = session.execute(sa.select(*[sa.select(sa.func.count()).select_from(t).scalar_subquery().label(t.name)
                                         for t in tables])).one()._asdict()
    files = sorted(str(p) for p in Path(storage).rglob("*") if p.is_file()) if os.path.isdir(storage) else []
    return counts, files


def assert_nothing_written(before, after, what):
    counts_before, files_before = before
    counts_after, files_after = after
    changed = {name: (counts_before[name], counts_after[name]) for name in counts_before
               if counts_before[name] != counts_after[name] and name not in MAY_GROW_WHEN_REFUSED}
    assert not changed, f"{what} was refused but changed rows: {changed}"
    assert files_before == files_after, f"{what} was refused but changed storage"


@pytest.fixture
def world(app, db_session, login):
    """A practice with a recording (granted to the owner), a complaint link and a built bundle."""
    audio = wav_bytes(8.0, rate=8000)
    result = ingest_audio(io.BytesIO(audio), practice_ref="pA", started_at=utcnow(), direction="inbound",
                          from_number="+447700900001", to_number="201", source="fuzz", source_ref="fuzz-1",
                          staff_extension="201")
    recording_id = result.recording_id
    owner = login("owner")
    page = owner.get(f"/callrec/recordings/{recording_id}")
    owner.post(f"/callrec/recordings/{recording_id}/grants",
               data={"csrf_token": csrf_from(page.get_data(as_text=True)), "action": "play", "purpose": "compliance"})
    assert db_session.scalar(sa.select(sa.func.count()).select_from(AccessGrant)) == 1
    from tests import jobs_support as js

    export_id = js.request_bundle(owner, app, "pat1")
    clients = {user: (login(user) if user else app.test_client()) for user in USERS}
    # A valid CSRF token per client, so generated forms get past CSRF to the validation behind it
    # (sent under every prefix a form may have; now and then left out, which must be a clean 400).
    tokens = {user: valid_csrf_token(app, client) for user, client in clients.items()}
    return dict(recording_id=recording_id, audio=audio, export_id=export_id, clients=clients, tokens=tokens,
                real_ids=[recording_id, export_id, "pA", "pB"])


# -- every route ---------------------------------------------------------------------------------


def callrec_rules(app):
    rules = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("callrec.") and rule.endpoint != "callrec.static":
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                rules.append((rule, method))
    return rules


def test_every_route_answers_generated_input_without_a_5xx_and_refusals_write_nothing(app, db_session, world):
    rules = callrec_rules(app)
    per_rule = math.ceil(ROUTE_REQUESTS / len(rules))
    fields, arguments = form_field_names(), query_argument_names()
    assert len(fields) > 20 and "justification" in fields and "purpose" in fields
    csrf_names = ["csrf_token"] + [name for name in fields if name.endswith("-csrf_token")]
    fields = [name for name in fields if not name.endswith("csrf_token")]
    storage = app.config["CALLREC_STORAGE_DIR"]
    sent = 0
    started = time.monotonic()
    state = {"baseline": snapshot(db_session, storage)}

    for rule, method in rules:
        def build_url(draw):
            path_values = {name: draw(st.sampled_from(world["real_ids"]) | values(world["real_ids"]))
                           for name in rule.arguments}
            with app.test_request_context():
                try:
                    return app.url_map.bind("localhost").build(rule.endpoint, path_values, method=method)
                except (BuildError, ValueError):
                    return None

        @_fuzz_settings(per_rule)
        @given(data=st.data())
        def one_request(data):
            nonlocal sent
            url = build_url(data.draw)
            if url is None:
                return
            user = data.draw(st.sampled_from(USERS), label="user")
            query = data.draw(st.dictionaries(st.sampled_from(arguments + fields), values(world["real_ids"]),
                                              max_size=4), label="query")
            form = data.draw(st.dictionaries(st.sampled_from(fields + arguments), values(world["real_ids"]),
                                             max_size=8), label="form") if method != "GET" else None
            note(f"{method} {url}")
            client = world["clients"][user]
            if form is not None and data.draw(st.integers(0, 9), label="csrf") > 0:
                form.update({name: world["tokens"][user] for name in csrf_names})
            response = client.open(url, method=method, query_string=query, data=form)
            body = response.get_data()  # a streamed answer (CSV, audio) fails while it is read, if at all
            response.close()
            sent += 1
            what = f"{method} {url} as {user} with query {query!r} and form {form!r}"
            assert response.status_code < 500, f"{what} answered {response.status_code}: {body[:300]!r}"
            db_session.rollback()
            after = snapshot(db_session, storage)
            if response.status_code >= 400:
                assert_nothing_written(state["baseline"], after, what)
            state["baseline"] = after  # one snapshot per request: the state every refusal is compared with

        one_request()

    COUNTS["routes"] = (len(rules), sent, time.monotonic() - started)
    print(f"\nfuzzed {len(rules)} route/method pairs with {sent} requests in {COUNTS['routes'][2]:.1f} s, 0 5xx")
    assert sent >= min(5000, ROUTE_REQUESTS * 0.9)


# -- the ingest API ------------------------------------------------------------------------------

METADATA_KEYS = ("call_id", "started_at", "direction", "from", "to", "staff_extension", "staff_name", "disposition",
                 "silence", "extra")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats(allow_nan=False) | st.text(max_size=20)
    | st.sampled_from(["inbound", "outbound", "2026-11-30T09:15:00+00:00", "9999-12-31T00:00:00+00:00",
                       "07700900001", "x" * 161]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8)


@st.composite
def metadata_text(draw):
    base = {"call_id": f"fuzz-{draw(st.integers(0, 10**9))}", "started_at": utcnow().isoformat(),
            "direction": "inbound", "from": "07700900001", "to": "201"}
    for key in draw(st.lists(st.sampled_from(METADATA_KEYS), max_size=3)):
        if draw(st.booleans()):
            base.pop(key, None)
        else:
            base[key] = draw(json_values)
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return draw(st.text(max_size=50))
    if choice == 1:
        depth = draw(st.integers(1, 100_000))
        return "[" * depth + "]" * depth
    return json.dumps(base)


@st.composite
def multipart_body(draw):
    audio = draw(st.sampled_from([wav_bytes(1.0), wav_bytes(1.0)[:44], b"", wav_bytes(1.0)[:44] + bytes(70_000),
                                  b"ID3" + bytes(100)]) | st.binary(max_size=300))
    boundary = draw(st.sampled_from(["b0undary", "x", "a" * 70]))
    parts = [("metadata", None, draw(metadata_text()).encode("utf-8", "surrogatepass")),
             ("audio", "call.wav", audio)]
    parts += draw(st.lists(st.tuples(st.sampled_from(["audio", "metadata", "other", ""]),
                                     st.none() | st.just("f.wav"), st.binary(max_size=50)), max_size=2))
    if draw(st.booleans()):
        parts.reverse()
    chunks = []
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        chunks.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n")
    closed = draw(st.integers(0, 4)) > 0  # now and then a body without its closing boundary
    body = b"".join(chunks) + (f"--{boundary}--\r\n".encode() if closed else b"")
    cut = draw(st.sampled_from([None, None, None, 10, len(body) // 2]))
    return (body if cut is None else body[:cut]), boundary


def test_the_ingest_api_answers_generated_uploads_in_json_without_a_5xx(app, db_session):
    storage = app.config["CALLREC_STORAGE_DIR"]
    client = app.test_client()
    sent = 0

    @_fuzz_settings(INGEST_REQUESTS)
    @given(upload=multipart_body(), signature=st.sampled_from(["valid", "valid", "valid", "none", "wrong", "stale"]),
           content_type=st.sampled_from(["multipart", "multipart", "json", "none", "no-boundary"]),
           extra_headers=st.dictionaries(st.sampled_from(["X-Callrec-Practice", "X-Callrec-Nonce",
                                                          "X-Callrec-Timestamp", "X-Callrec-Content-SHA256"]),
                                         st.text(st.characters(max_codepoint=255, blacklist_categories=("Cc",)),
                                                 max_size=80),
                                         max_size=1))
    def one_upload(upload, signature, content_type, extra_headers):
        nonlocal sent
        body, boundary = upload
        headers = signed_headers(SECRET, "pA", "POST", API_PATH, body,
                                 timestamp=int(time.time()) - (3600 if signature == "stale" else 0))
        if signature == "none":
            del headers["X-Callrec-Signature"]
        elif signature == "wrong":
            headers["X-Callrec-Signature"] = "ab" * 32
        headers.update(extra_headers)
        headers["Content-Type"] = {"multipart": f"multipart/form-data; boundary={boundary}", "json": "application/json",
                                   "none": "", "no-boundary": "multipart/form-data"}[content_type]
        before = snapshot(db_session, storage)
        audit_before = before[0][AuditEvent.__tablename__]
        response = client.post(API_PATH, data=body, headers=headers)
        sent += 1
        assert response.status_code < 500, response.data[:300]
        assert response.is_json, response.data[:300]
        after = snapshot(db_session, storage)
        if response.status_code >= 400:
            assert_nothing_written(before, after, f"upload answered {response.status_code} {response.json}")
        if response.status_code == 401:  # a failed authentication never reaches the audit trail
            assert after[0][AuditEvent.__tablename__] == audit_before
        db_session.rollback()

    one_upload()
    COUNTS["ingest"] = sent
    print(f"\nfuzzed the ingest API with {sent} uploads, 0 5xx")


# -- Range and If-Range --------------------------------------------------------------------------

range_headers = st.one_of(
    st.builds(lambda a, b: f"bytes={a}-{b}", st.integers(0, 10**6), st.integers(0, 10**6)),
    st.builds(lambda a: f"bytes={a}-", st.integers(0, 10**6)),
    st.builds(lambda a: f"bytes=-{a}", st.integers(0, 10**6)),
    st.sampled_from(["bytes=-", "bytes=", "bytes=0-0,5-9", "items=0-1", "bytes=1-0", "bytes=" + "9" * 40 + "-",
                     "bytes=-" + "9" * 40, "bytes = 0-1", "bytes=0-1, 0-1", ""]),
    st.text(st.characters(max_codepoint=255, blacklist_categories=("Cc",)), max_size=30),
)


def test_range_and_if_range_never_give_a_5xx_or_wrong_bytes(app, db_session, world):
    owner = world["clients"]["owner"]
    audio = world["audio"]
    audio_url = f"/callrec/recordings/{world['recording_id']}/audio"
    bundle_url = f"/callrec/exports/{world['export_id']}/download"
    bundle = owner.get(bundle_url).data
    etags = {url: owner.get(url, headers={"Range": "bytes=0-0"}).headers["ETag"] for url in (audio_url, bundle_url)}
    sent = 0

    @_fuzz_settings(RANGE_REQUESTS)
    @given(url=st.sampled_from([audio_url, bundle_url]), range_header=range_headers,
           if_range=st.sampled_from(["", "current", "weak", "Thu, 03 Dec 2026 09:00:00 GMT", '"x"', "W/", "*"]))
    def one_range(url, range_header, if_range):
        nonlocal sent
        headers = {"Range": range_header} if range_header else {}
        if if_range:
            headers["If-Range"] = {"current": etags[url], "weak": "W/" + etags[url]}.get(if_range, if_range)
        response = owner.get(url, headers=headers)
        sent += 1
        whole = audio if url == audio_url else bundle
        assert response.status_code in (200, 206, 416), (headers, response.status_code)
        if response.status_code == 200:
            assert response.data == whole
        elif response.status_code == 206:
            assert if_range in ("", "current"), "If-Range must match strongly"
            start, end = map(int, response.headers["Content-Range"].split(" ")[1].split("/")[0].split("-"))
            assert response.data == whole[start:end + 1]
        assert len(response.headers.getlist("Date")) <= 1

    one_range()
    COUNTS["range"] = sent
    print(f"\nfuzzed Range and If-Range with {sent} requests, 0 5xx")
