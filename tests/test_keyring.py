"""Key ring: parsing, configuration sources, wrapping, rotation files."""
import base64
import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callrec_plugin.crypto import TamperedError, generate_data_key
from callrec_plugin.keyring import (
    KeyRing,
    KeyRingError,
    UnwrapError,
    add_key_to_file,
    generate_key_file,
    new_key_id,
)

K1 = bytes([1]) * 32
K2 = bytes([2]) * 32
K3 = bytes([3]) * 32
RID = "rec_0001-abcdef"


def b64(key):
    return base64.b64encode(key).decode()


def test_from_text_lines_semicolons_comments_newest_first():
    text = f"""
    # callrec keys
    new:{b64(K1)}   # rotated in March

    mid:{b64(K2)};old:{b64(K3)}
    """
    ring = KeyRing.from_text(text)
    assert ring.ids == ("new", "mid", "old")
    assert ring.newest_id == "new"
    assert "old" in ring and "nope" not in ring


def test_from_text_accepts_urlsafe_base64():
    key = bytes([0xFB, 0xFF] * 16)
    assert set(b64(key)) & set("+/")
    ring = KeyRing.from_text("k1:" + base64.urlsafe_b64encode(key).decode())
    kid, wrapped = ring.wrap(K2, RID)
    assert KeyRing([("k1", key)]).unwrap(wrapped, kid, RID) == K2


@pytest.mark.parametrize(
    "text,match",
    [
        (f"k1:{b64(K1)}\nk2:not base64!!", r"entry 2 \('k2'\).*not valid base64"),
        (f"k1:{b64(K1)[:-4]}", r"entry 1 \('k1'\).*decodes to \d+ bytes, expected 32"),
        (f"k1:{b64(K1 + b'x')}", r"entry 1 \('k1'\).*expected 32"),
        (f"k1:{b64(K1)};k1:{b64(K2)}", r"entry 2 \('k1'\).*duplicate key id 'k1'"),
        (f"k1:{b64(K1)};{b64(K2)}", r"entry 2 is malformed: expected 'key_id:base64key'"),
        (f":{b64(K1)}", r"entry 1: invalid key id ''"),
        (f"k|1:{b64(K1)}", r"entry 1: invalid key id 'k\|1'"),
    ],
)
def test_from_text_errors_name_the_entry(text, match):
    with pytest.raises(ValueError, match=match) as info:
        KeyRing.from_text(text)
    # Never echo key material.
    assert b64(K1) not in str(info.value) and b64(K2) not in str(info.value)


def test_from_text_with_no_keys():
    with pytest.raises(KeyRingError):
        KeyRing.from_text("# only a comment\n\n")


def test_repr_hides_keys():
    ring = KeyRing([("k1", K1)])
    assert b64(K1) not in repr(ring) and "k1" in repr(ring)


# -- from_config -----------------------------------------------------------------------------------


def write_key_file(path, text):
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


def test_from_config_file_entries_first_then_environment(tmp_path):
    path = write_key_file(tmp_path / "keys", f"fileA:{b64(K1)}\nfileB:{b64(K2)}\n")
    config = {"CALLREC_KEY_FILE": path}
    ring = KeyRing.from_config(config, environ={"CALLREC_KEYS": f"envA:{b64(K3)}"})
    assert ring.ids == ("fileA", "fileB", "envA")


def test_from_config_custom_env_name_and_env_only():
    config = {"CALLREC_KEY_FILE": None, "CALLREC_KEYS_ENV": "MY_KEYS"}
    ring = KeyRing.from_config(config, environ={"MY_KEYS": f"a:{b64(K1)};b:{b64(K2)}", "CALLREC_KEYS": "x"})
    assert ring.ids == ("a", "b")
    # Default variable name when the config key is absent.
    assert KeyRing.from_config({}, environ={"CALLREC_KEYS": f"z:{b64(K3)}"}).ids == ("z",)


def test_from_config_same_key_in_both_is_deduplicated_conflict_is_refused(tmp_path):
    path = write_key_file(tmp_path / "keys", f"a:{b64(K1)}\n")
    ring = KeyRing.from_config({"CALLREC_KEY_FILE": path}, environ={"CALLREC_KEYS": f"a:{b64(K1)}"})
    assert ring.ids == ("a",)
    with pytest.raises(KeyRingError, match="different keys"):
        KeyRing.from_config({"CALLREC_KEY_FILE": path}, environ={"CALLREC_KEYS": f"a:{b64(K2)}"})


def test_from_config_without_any_key_is_actionable(tmp_path):
    with pytest.raises(KeyRingError, match="CALLREC_KEY_FILE is not set.*CALLREC_KEYS.*generate_key_file"):
        KeyRing.from_config({}, environ={})
    empty = write_key_file(tmp_path / "keys", "# nothing yet\n")
    with pytest.raises(KeyRingError, match="holds no keys"):
        KeyRing.from_config({"CALLREC_KEY_FILE": empty}, environ={})


def test_from_config_missing_file(tmp_path):
    missing = str(tmp_path / "nope")
    with pytest.raises(KeyRingError, match="does not exist.*generate_key_file"):
        KeyRing.from_config({"CALLREC_KEY_FILE": missing}, environ={"CALLREC_KEYS": f"a:{b64(K1)}"})


def test_from_config_malformed_sources_name_the_source(tmp_path):
    path = write_key_file(tmp_path / "keys", "bad entry\n")
    with pytest.raises(KeyRingError, match="key file .*keys entry 1"):
        KeyRing.from_config({"CALLREC_KEY_FILE": path}, environ={})
    with pytest.raises(KeyRingError, match="environment variable CALLREC_KEYS entry 1"):
        KeyRing.from_config({}, environ={"CALLREC_KEYS": "a:xx"})


def test_from_config_warns_on_loose_permissions(tmp_path, caplog):
    path = write_key_file(tmp_path / "keys", f"a:{b64(K1)}\n")
    os.chmod(path, 0o644)
    KeyRing.from_config({"CALLREC_KEY_FILE": path}, environ={})
    assert "chmod 600" in caplog.text


# -- wrap / unwrap ---------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(data_key=st.binary(min_size=32, max_size=32), rid=st.from_regex(r"[A-Za-z0-9_-]{8,64}", fullmatch=True))
def test_wrap_unwrap_round_trip(data_key, rid):
    ring = KeyRing([("new", K1), ("old", K2)])
    key_id, wrapped = ring.wrap(data_key, rid)
    assert key_id == "new" and len(wrapped) == 12 + 32 + 16
    assert ring.unwrap(wrapped, key_id, rid) == data_key
    assert ring.wrap(data_key, rid)[1] != wrapped  # random nonce


def test_unwrap_failures():
    ring = KeyRing([("new", K1), ("old", K2)])
    data_key = generate_data_key()
    key_id, wrapped = ring.wrap(data_key, RID)
    with pytest.raises(UnwrapError):
        ring.unwrap(wrapped, key_id, "rec_0002-abcdef")  # moved to another recording
    with pytest.raises(UnwrapError):
        ring.unwrap(wrapped, "old", RID)  # relabelled with another (known) key id
    with pytest.raises(KeyRingError, match="'gone' is not in the key ring"):
        ring.unwrap(wrapped, "gone", RID)
    for i in range(len(wrapped)):
        flipped = bytearray(wrapped)
        flipped[i] ^= 1
        with pytest.raises(UnwrapError):
            ring.unwrap(bytes(flipped), key_id, RID)
    with pytest.raises(UnwrapError):
        ring.unwrap(wrapped[:-1], key_id, RID)
    # Same id, different key material (a replaced key file).
    with pytest.raises(UnwrapError):
        KeyRing([("new", K3)]).unwrap(wrapped, key_id, RID)
    assert issubclass(UnwrapError, TamperedError)


def test_aad_is_not_ambiguous():
    # recording ids may not contain "|" in storage, but the AAD must still be unambiguous.
    ring = KeyRing([("b", K1), ("c", K1)])
    _, wrapped = ring.wrap(K2, "a|b")
    with pytest.raises(UnwrapError):
        KeyRing([("c", K1)]).unwrap(wrapped, "c", "a|b|b")


def test_wrap_rejects_bad_data_key():
    with pytest.raises(ValueError):
        KeyRing([("a", K1)]).wrap(b"short", RID)


def test_constructor_validation():
    with pytest.raises(KeyRingError):
        KeyRing([])
    with pytest.raises(ValueError):
        KeyRing([("a", b"x" * 31)])
    with pytest.raises(ValueError):
        KeyRing([("a", K1), ("a", K2)])
    with pytest.raises(ValueError):
        KeyRing([("a\n", K1)])


# -- key files and rotation ------------------------------------------------------------------------


def test_generate_key_file(tmp_path):
    path = tmp_path / "callrec.keys"
    key_id = generate_key_file(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert key_id.startswith("k") and len(key_id) == len(new_key_id())
    ring = KeyRing.from_config({"CALLREC_KEY_FILE": str(path)}, environ={})
    assert ring.ids == (key_id,)
    with pytest.raises(FileExistsError):
        generate_key_file(path)
    assert new_key_id() != new_key_id()


def test_add_key_to_file_rotation(tmp_path):
    path = tmp_path / "callrec.keys"
    first = generate_key_file(path)
    ring1 = KeyRing.from_config({"CALLREC_KEY_FILE": str(path)}, environ={})
    data_key = generate_data_key()
    old_id, wrapped = ring1.wrap(data_key, RID)

    second = add_key_to_file(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    ring2 = KeyRing.from_config({"CALLREC_KEY_FILE": str(path)}, environ={})
    assert ring2.ids == (second, first)
    assert path.read_text().startswith("#")  # comments kept at the top
    assert ring2.unwrap(wrapped, old_id, RID) == data_key
    assert ring2.needs_rewrap(old_id)
    new_id, rewrapped = ring2.rewrap(wrapped, old_id, RID)
    assert new_id == second and not ring2.needs_rewrap(new_id)
    assert ring2.unwrap(rewrapped, new_id, RID) == data_key
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_add_key_to_broken_file_is_refused(tmp_path):
    path = tmp_path / "keys"
    path.write_text("garbage\n")
    with pytest.raises(ValueError):
        add_key_to_file(path)
    assert path.read_text() == "garbage\n"
