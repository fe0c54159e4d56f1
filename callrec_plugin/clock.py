"""The time callrec's retention decisions use; one function so tests can move the clock."""
import datetime as dt


def now():
    return dt.datetime.now(dt.timezone.utc)
