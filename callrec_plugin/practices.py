"""Which practices exist is the host's to say (``callrec_practice_exists``); callrec never files a call
under a practice nobody knows, whether it came from an import, the signed API or the Python API."""
from callrec_plugin.state import get_state


class UnknownPractice(ValueError):
    """The practice named is not one the host knows; nothing was stored."""

    def __init__(self, practice_ref, why):
        super().__init__(f"unknown practice {practice_ref!r}: {why}")
        self.practice_ref = practice_ref
        self.reason = str(self)


def check_practice(practice_ref):
    """Return the practice ref if the host says it exists; raise UnknownPractice otherwise (deny by default:
    a host that does not answer the hook has no practices callrec may file calls under)."""
    answer = get_state().pm.hook.callrec_practice_exists(practice_ref=practice_ref)
    if answer is None:
        raise UnknownPractice(practice_ref, "no plugin answers callrec_practice_exists (the host must implement it)")
    if not answer:
        raise UnknownPractice(practice_ref, "the host has no such practice; nothing was imported")
    return practice_ref
