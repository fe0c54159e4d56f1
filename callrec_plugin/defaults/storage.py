"""Built-in storage: CALLREC_STORAGE_BACKEND chooses encrypted blobs on the local filesystem under
CALLREC_STORAGE_DIR ("folder") or in S3-compatible object storage ("s3", CALLREC_S3_BUCKET and the other S3 settings)."""
from callrec_plugin.hooks import hookimpl
from callrec_plugin.state import get_state

_S3_KEYS = ("CALLREC_S3_BUCKET", "CALLREC_S3_PREFIX", "CALLREC_S3_ENDPOINT_URL", "CALLREC_S3_REGION",
            "CALLREC_S3_ACCESS_KEY_ID", "CALLREC_S3_SECRET_ACCESS_KEY", "CALLREC_S3_ADDRESSING_STYLE",
            "CALLREC_S3_PART_SIZE", "CALLREC_S3_MAX_CONNECTIONS")


@hookimpl(trylast=True)
def callrec_storage_backend(app):
    kind = app.config["CALLREC_STORAGE_BACKEND"]
    if kind == "folder":
        from callrec_plugin.storage import LocalEncryptedStorage

        return LocalEncryptedStorage(app.config["CALLREC_STORAGE_DIR"])
    if kind == "s3":
        return _s3_backend(app)
    raise ValueError(f"CALLREC_STORAGE_BACKEND must be 'folder' or 's3', not {kind!r}")


def _s3_backend(app):
    # A boto3 client costs tens of milliseconds to build and holds the connection pool: one per app,
    # built again only when the S3 settings change (config is read per request).
    from callrec_plugin.storage_s3 import S3EncryptedStorage

    settings = tuple(app.config.get(key) for key in _S3_KEYS)
    cache = get_state(app).cache
    if cache.get("s3_settings") != settings:
        cache["s3_backend"], cache["s3_settings"] = S3EncryptedStorage.from_config(app.config), settings
    return cache["s3_backend"]
