"""callrec: lawful, auditable call recording for dental practice-management software.

    from callrec_plugin import CallRec
    callrec = CallRec(app)      # after SQLAlchemy(app) and LoginManager().init_app(app)
"""
__version__ = "0.1.0"

__all__ = ["CallRec", "hookimpl", "__version__"]


def __getattr__(name):
    # Imported lazily so that the pure modules (crypto, ingest parsers) load without Flask app code.
    if name == "CallRec":
        from callrec_plugin.extension import CallRec

        return CallRec
    if name == "hookimpl":
        from callrec_plugin.hooks import hookimpl

        return hookimpl
    raise AttributeError(name)
