"""Per-practice settings: what a PMS hosting many practices may set for each one.

callrec asks the hook ``callrec_practice_settings(practice_ref)`` (firstresult). The built-in answer
(``callrec_plugin/defaults/practice_settings.py``, trylast) reads the app config; a host may answer
with a dict of only the keys it stores per practice: every key it leaves out falls back to the
config, so a partial answer is fine and new keys never break an old host plugin.

Read them through ``settings_for(practice_ref)``, which returns a :class:`PracticeSettings`:

==========================  ====================================  ============================================
key                         config key (the default)              meaning
==========================  ====================================  ============================================
``retention_months``        ``CALLREC_RETENTION_MONTHS`` (6)      calendar months a call is kept from its start
``grace_days``              ``CALLREC_HOLD_GRACE_DAYS`` (7)       days a call stays after its last hold ends
``extension_cap_months``    ``CALLREC_EXTENSION_CAP_MONTHS`` (6)  months past its retention one person may
                                                                  keep a call; beyond that only a hold
``tombstone_years``         ``CALLREC_TOMBSTONE_YEARS`` (6)       years a purged call's tombstone is kept
``timezone``                ``CALLREC_PRACTICE_TIMEZONE``         the practice's zone: whose calendar day a
                            (``Europe/London``)                   call falls on
``purpose_matrix``          ``CALLREC_PURPOSE_MATRIX`` (None)     role x purpose override; None = the policy's
``call_log_roles``          ``CALLREC_CALL_LOG_ROLES`` ([])       roles besides owner, manager and data
                                                                  protection lead who may search the call log
``match_call_roles``        ``CALLREC_MATCH_CALL_ROLES`` ([])     roles besides owner and manager who may link
                                                                  an unmatched call to a patient
==========================  ====================================  ============================================

Other parts of callrec add their own keys by adding a row to ``SETTINGS`` (name -> config key and
checker); ``settings.get(name, default)`` reads any key, registered or not, so code may also read
a key that only some hosts send. Values a host sends are checked here: a wrong type or range raises
:class:`PracticeSettingsError` naming the practice and the key, rather than silently keeping a call
for ever or not at all.
"""
from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field

from flask import current_app, g, has_app_context

from callrec_plugin.state import get_state


class PracticeSettingsError(ValueError):
    """A practice setting has a value callrec cannot use; the message names the practice and key."""


def _whole_number(minimum):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"a whole number of at least {minimum}")
        return value
    return check


def _timezone(value):
    try:
        zoneinfo.ZoneInfo(str(value))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError("an IANA time zone name such as Europe/London") from None
    return str(value)


def _matrix(value):
    if value is not None and not isinstance(value, Mapping):
        raise ValueError("None or {role: {purpose: rule}}")
    return value


def _role_names(value):
    from callrec_plugin.roles import ROLES

    names = list(value or ())
    if isinstance(value, str) or any(name not in ROLES for name in names):
        raise ValueError(f"a list of role names from {sorted(ROLES)}")
    return tuple(names)


# name -> (config key the built-in answer reads, checker). Add a row for a new per-practice setting.
SETTINGS = {
    "retention_months": ("CALLREC_RETENTION_MONTHS", _whole_number(1)),
    "grace_days": ("CALLREC_HOLD_GRACE_DAYS", _whole_number(0)),
    "extension_cap_months": ("CALLREC_EXTENSION_CAP_MONTHS", _whole_number(0)),
    "tombstone_years": ("CALLREC_TOMBSTONE_YEARS", _whole_number(1)),
    "timezone": ("CALLREC_PRACTICE_TIMEZONE", _timezone),
    "purpose_matrix": ("CALLREC_PURPOSE_MATRIX", _matrix),
    "call_log_roles": ("CALLREC_CALL_LOG_ROLES", _role_names),
    "match_call_roles": ("CALLREC_MATCH_CALL_ROLES", _role_names),
}


@dataclass(frozen=True)
class PracticeSettings:
    """One practice's settings; attribute access for the keys in SETTINGS, ``get`` for any key."""

    practice_ref: str | None
    retention_months: int
    grace_days: int
    extension_cap_months: int
    tombstone_years: int
    timezone: str
    purpose_matrix: Mapping | None
    other: Mapping = field(default_factory=dict)  # keys added later, or sent by a host for its own plugins

    def get(self, name, default=None):
        if name in SETTINGS and name in self.__dataclass_fields__:
            return getattr(self, name)
        return self.other.get(name, default)

    @property
    def zone(self):
        return zoneinfo.ZoneInfo(self.timezone)


def config_settings(config):
    """The built-in answer: every registered key from the app config."""
    return {name: config.get(config_key) for name, (config_key, _check) in SETTINGS.items()}


def build(practice_ref, answer, config):
    """Merge a hook's (partial) answer over the config and check every value."""
    if answer is not None and not isinstance(answer, Mapping):
        raise PracticeSettingsError(
            f"callrec_practice_settings({practice_ref!r}) returned {type(answer).__name__}, not a dict")
    merged = config_settings(config)
    merged.update(answer or {})
    known, other = {}, {}
    for name, value in merged.items():
        if name in SETTINGS:
            try:
                value = SETTINGS[name][1](value)
            except ValueError as exc:
                raise PracticeSettingsError(
                    f"practice {practice_ref!r}: setting {name!r} = {value!r} must be {exc}") from None
            if name in PracticeSettings.__dataclass_fields__:
                known[name] = value
                continue
        other[name] = value
    return PracticeSettings(practice_ref=practice_ref, other=other, **known)


def settings_for(practice_ref):
    """The practice's settings (cached for the request or app context: panels ask once per row)."""
    practice_ref = None if practice_ref is None else str(practice_ref)
    cache = g.setdefault("_callrec_practice_settings", {}) if has_app_context() else {}
    if practice_ref not in cache:
        answer = get_state().pm.hook.callrec_practice_settings(practice_ref=practice_ref)
        cache[practice_ref] = build(practice_ref, answer, current_app.config)
    return cache[practice_ref]


def forget_cached():
    """Drop the cached answers (a long-running scheduler or a test that changed a practice's settings)."""
    if has_app_context():
        g.pop("_callrec_practice_settings", None)
