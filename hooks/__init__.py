"""callrec's hook specifications (pluggy project ``callrec``).

``host`` holds the hooks a host page calls through ``callrec_slot``; ``extension`` holds the hooks
callrec calls to learn what only the host knows. Plugins mark implementations with ``hookimpl``.
"""
import pluggy

PROJECT = "callrec"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
