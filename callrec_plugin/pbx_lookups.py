"""What the should-record endpoint looks up on every call the phone system makes, cached per process
where a stale answer cannot matter.

* A number's normal form depends only on the text and the region (``phonenumbers``' metadata is fixed
  for the life of the process), so it is kept in a bounded LRU without expiry.
* That a practice exists is the host's answer (``callrec_practice_exists``). A "yes" is kept for
  PRACTICE_TTL_SECONDS per app: a practice the host removes is still answered for at most that long,
  and only to a phone system that holds its signing secret. A "no" is never kept (a practice the host
  adds is known at once).
* Objections are never cached: the patient and their objections are read on every request, so an
  objection recorded or withdrawn in any process is honoured by the next answer.
"""
import functools
import time

from callrec_plugin.ingest.numbers import InvalidNumber, normalise
from callrec_plugin.practices import check_practice
from callrec_plugin.state import get_state

PRACTICE_TTL_SECONDS = 60.0
NUMBER_CACHE_SIZE = 4096
CACHE_KEY = "pbx_known_practices"


@functools.lru_cache(maxsize=NUMBER_CACHE_SIZE)
def _normal_form(text, region):
    """(number, None) or (None, why it is not a number): an InvalidNumber answer is cached as well."""
    try:
        return normalise(text, region), None
    except InvalidNumber as exc:
        return None, exc.reason


def normalised_number(text, region):
    """``normalise(text, region)``, remembered; raises InvalidNumber as it does."""
    number, why = _normal_form(text, region)
    if why is not None:
        raise InvalidNumber(why)
    return number


def check_practice_cached(practice_ref, app=None):
    """``check_practice``, with a "yes" remembered for PRACTICE_TTL_SECONDS (UnknownPractice otherwise)."""
    known = get_state(app).cache.setdefault(CACHE_KEY, {})
    now = time.monotonic()
    if known.get(practice_ref, 0.0) > now:
        return practice_ref
    check_practice(practice_ref)
    # Bounded: only practices with a configured API secret and a correctly signed request get here.
    known[practice_ref] = now + PRACTICE_TTL_SECONDS
    return practice_ref

