"""Ingest: FreePBX/Asterisk import, signed HTTP API and Python API, one pipeline.

Integrators call ``from callrec_plugin.ingest import ingest_audio`` (see ingest/pipeline.py).
"""

__all__ = ["IngestError", "IngestResult", "ingest_audio"]


def __getattr__(name):
    # Lazy, so the pure parsers (audio, numbers, freepbx, cdr, signing) import without Flask.
    if name in __all__:
        from callrec_plugin.ingest import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)
