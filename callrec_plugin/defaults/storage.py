"""Built-in storage: encrypted blobs on the local filesystem under CALLREC_STORAGE_DIR."""
from callrec_plugin.hooks import hookimpl


@hookimpl(trylast=True)
def callrec_storage_backend(app):
    from callrec_plugin.storage import LocalEncryptedStorage

    return LocalEncryptedStorage(app.config["CALLREC_STORAGE_DIR"])
