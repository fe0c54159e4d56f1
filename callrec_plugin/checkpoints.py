"""Signed audit checkpoints: (seq, head hash) signed with Ed25519 and kept outside the database.

The hash chain shows any edit, insertion or reordering; only a copy of the head kept elsewhere shows
that the newest rows were deleted. Keep checkpoint files where the database's users cannot write.
"""
import base64
import datetime as dt
import json
import os

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


class CheckpointError(ValueError):
    """The checkpoint or its key is missing, malformed or not signed by our key."""


def generate_signing_key(path):
    """Write a new Ed25519 private key (PEM, mode 0600); refuse to overwrite one."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return path


def load_signing_key(path):
    if not path:
        raise CheckpointError("set CALLREC_AUDIT_SIGNING_KEY_FILE to an Ed25519 private key "
                              "(create one with: flask callrec audit init-key PATH)")
    try:
        with open(path, "rb") as source:
            key = serialization.load_pem_private_key(source.read(), password=None)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read the audit signing key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointError(f"{path} is not an Ed25519 private key")
    return key


def _message(seq, head_hash, created_at):
    return f"callrec-audit-checkpoint|{seq}|{head_hash}|{created_at}".encode()


def make_checkpoint(key, seq, head_hash):
    created_at = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    signature = key.sign(_message(seq, head_hash, created_at))
    return {"seq": seq, "head_hash": head_hash, "created_at": created_at,
            "signature": base64.b64encode(signature).decode()}


def write_checkpoint(path, checkpoint):
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as out:
        json.dump(checkpoint, out, indent=2)
        out.write("\n")
    os.replace(tmp, path)


def read_checkpoint(path, key):
    """The checkpoint in path, after checking its signature against our key."""
    try:
        with open(path, encoding="utf-8") as source:
            checkpoint = json.load(source)
        seq, head_hash, created_at = int(checkpoint["seq"]), str(checkpoint["head_hash"]), checkpoint["created_at"]
        signature = base64.b64decode(checkpoint["signature"], validate=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"cannot read the checkpoint {path}: {exc}") from None
    try:
        key.public_key().verify(signature, _message(seq, head_hash, created_at))
    except InvalidSignature:
        raise CheckpointError(f"the checkpoint {path} is not signed by this practice's audit key") from None
    return {"seq": seq, "head_hash": head_hash, "created_at": created_at}
