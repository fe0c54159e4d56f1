"""Phone numbers from phone systems, normalised for storage and patient matching.

``normalise(raw, region="GB")`` returns exactly one of:

* ``"withheld"`` -- no number was presented: ``None``, empty, or a privacy marker such as
  "anonymous", "withheld", "unknown", "private", "restricted", "unavailable" (any case), Asterisk's
  "<unknown>", SIP's ``anonymous@anonymous.invalid``, or the CLI markers "O" / "P";
* ``"ext:<digits>"`` -- an internal extension: 2 to 6 digits without a leading "+";
* ``"service:<digits>"`` -- only for a number that was *dialled* (``dialled=True``: the callee of an
  outgoing call): an emergency or short service number of ``region`` (999, 112, 111, 101 ...), which
  on an outside line is never an extension. :func:`number_label` says what it is;
* an E.164 string such as ``"+442079460123"``, read with ``phonenumbers`` in ``region`` when the
  number has no international prefix. ``00`` international prefixes, "+44 (0)..." and separators
  (spaces, "-", ".", "/", parentheses) are understood; ``sip:``/``tel:`` URIs are reduced to their
  user part. Digits given without a prefix that are not a number of ``region`` but are a valid
  international number (a trunk sending "12025550123") are read as international.

Anything else raises :class:`InvalidNumber` with a reason: letters, feature codes ("*97"), more
than 20 digits, or a number ``phonenumbers`` does not consider valid. Ofcom's drama ranges (07700
900xxx, 020 7946 0xxx, 01632 960xxx, ...), which are reserved for fiction, demos and tests, are
accepted although ``phonenumbers`` marks them invalid.

Pure: stdlib + phonenumbers only.
"""

from __future__ import annotations

import re
import unicodedata

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult

__all__ = ["WITHHELD", "EXTENSION_PREFIX", "SERVICE_PREFIX", "MAX_DIGITS", "InvalidNumber", "normalise",
           "is_extension", "is_service", "number_label", "number_for_spreadsheet", "without_outside_line_prefix"]

WITHHELD = "withheld"
EXTENSION_PREFIX = "ext:"
SERVICE_PREFIX = "service:"
MAX_DIGITS = 20
_MAX_INPUT_CHARS = 120

# Compared after lower-casing and collapsing runs of spaces, "_" and "-" into one space.
_WITHHELD_MARKERS = frozenset(
    {
        "",
        "anonymous",
        "withheld",
        "unknown",
        "private",
        "restricted",
        "unavailable",
        "anonymous anonymous.invalid",  # SIP RFC 3323 (after the "@" split below)
        "anonymous.invalid",
        "o",  # CLI "out of area / unavailable"
        "p",  # CLI "private"
        "prohib",
        "prohibited",
        "blocked",
        "private number",
        "number withheld",
        "withheld number",
        "unknown number",
        "unknown caller",
        "no caller id",
        "nocallerid",
        "no cli",
        "not available",
        "out of area",
        "presentation restricted",
    }
)
_ALLOWED = re.compile(r"\+?[0-9 .()/-]*")
_EXTENSION = re.compile(r"[0-9]{2,6}")

# Ofcom numbers for TV and radio drama (national significant numbers after +44, all 10 digits).
_OFCOM_DRAMA_PREFIXES = (
    "1134960", "1144960", "1154960", "1164960", "1174960", "1184960", "1214960", "1314960",
    "1414960", "1514960", "1614960", "1914980", "2079460", "2896496", "2920180", "1632960",
    "7700900", "8081570", "9098790", "3069990",
)

_REASONS = {
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.TOO_LONG: "too long",
    ValidationResult.INVALID_LENGTH: "wrong length",
    ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "a local number without its area code",
}


# What a short number is, where phonenumbers' metadata only says "valid short number" (UK numbers).
_SERVICE_LABELS = {
    "GB": {
        "999": "emergency services",
        "112": "emergency services",
        "111": "NHS 111",
        "101": "police non-emergency",
        "105": "power cut line",
        "119": "NHS services",
    },
}


class InvalidNumber(ValueError):
    """The text is not a phone number, extension or withheld marker; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def is_extension(value: str) -> bool:
    """True for a normalised extension such as ``"ext:201"``."""
    return value.startswith(EXTENSION_PREFIX) and bool(_EXTENSION.fullmatch(value[len(EXTENSION_PREFIX) :]))


def is_service(value: str | None) -> bool:
    """True for a normalised emergency or short service number such as ``"service:999"``."""
    return bool(value) and value.startswith(SERVICE_PREFIX)


def number_label(value: str | None) -> str:
    """How a stored number reads on a page: ``"999 (emergency services)"``, ``"extension 201"``."""
    if not value:
        return "—"
    if value.startswith(SERVICE_PREFIX):
        digits = value[len(SERVICE_PREFIX):]
        label = next((labels[digits] for labels in _SERVICE_LABELS.values() if digits in labels), None)
        return f"{digits} ({label or 'service number'})"
    if value.startswith(EXTENSION_PREFIX):
        return f"extension {value[len(EXTENSION_PREFIX):]}"
    return value


def number_for_spreadsheet(value: str | None, region: str = "GB") -> str:
    """A stored number as a CSV cell people open in a spreadsheet: a number of ``region`` in its national
    format ("07700 900001": the space keeps it text, so the leading 0 stays and it is no formula, with no
    apostrophe in front), any other number in international format ("+33 1 23 45 67 89", which the CSV
    neutraliser still marks, as a spreadsheet would run a leading "+"); extensions and service numbers
    as :func:`number_label` says them; "" for none."""
    if not value:
        return ""
    if not value.startswith("+"):
        return number_label(value)
    try:
        parsed = phonenumbers.parse(value, None)
    except NumberParseException:
        return value
    national = parsed.country_code == phonenumbers.country_code_for_region(region)
    text = phonenumbers.format_number(parsed, PhoneNumberFormat.NATIONAL if national else PhoneNumberFormat.INTERNATIONAL)
    return text if (not national or " " in text) else value


def _service_number(digits: str, region: str) -> bool:
    if digits in _SERVICE_LABELS.get(region, {}):
        return True
    try:
        number = phonenumbers.parse(digits, region)
    except NumberParseException:
        return False
    return phonenumbers.is_emergency_number(digits, region) or phonenumbers.shortnumberinfo.is_valid_short_number_for_region(
        number, region)


def _valid_in_region(text: str, region: str) -> bool:
    """Valid as dialled in the region: a national number ("0800 ...") or one with the region's
    international prefix ("00 1 202 ..."); never through the country-code-without-"+" fallback."""
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException:
        return False
    return _acceptable(number)


def without_outside_line_prefix(number: str | None, prefix: str | None, region: str = "GB") -> str | None:
    """A dialled number with the PBX's outside-line prefix ("9" in many practices) taken off, only when
    what remains is a valid number of the region or one of its emergency or service numbers.

    ``908001111111`` becomes ``08001111111`` (a UK freephone number), never ``+908001111111`` (a
    Turkish number that happens to be valid); ``9999`` becomes ``999``.
    """
    if not prefix or not number or not number.startswith(prefix) or number.startswith("+"):
        return number
    stripped = number[len(prefix):]
    digits = re.sub(r"[^0-9]", "", stripped)
    if not digits or digits != stripped.strip():
        return number
    if _valid_in_region(stripped, region) or _service_number(digits, region):
        return stripped
    return number


def normalise(raw: str | None, region: str = "GB", dialled: bool = False) -> str:
    """``"withheld"``, ``"ext:<digits>"``, ``"service:<digits>"`` (dialled only) or an E.164 number;
    :class:`InvalidNumber` otherwise."""
    if raw is None:
        return WITHHELD
    if not isinstance(raw, str):
        raise TypeError(f"raw must be str or None, not {type(raw).__name__}")
    region = (region or "").upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown phone region {region!r}")
    if len(raw) > _MAX_INPUT_CHARS:
        raise InvalidNumber(f"too long to be a phone number ({len(raw)} characters)")
    shown = _shown(raw)

    text = _unwrap(raw)
    marker = re.sub(r"[\s_-]+", " ", text.lower().replace("@", " ")).strip()
    if marker in _WITHHELD_MARKERS:
        return WITHHELD
    text = "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in text)
    text = unicodedata.normalize("NFKC", text).strip()
    if not _ALLOWED.fullmatch(text):
        if any(c in "*#" for c in text):
            raise InvalidNumber(f"{shown} is a feature code or keypad sequence, not a phone number")
        if any(c.isalpha() for c in text):
            raise InvalidNumber(f"{shown} contains letters, so it is not a phone number")
        raise InvalidNumber(f"{shown} contains characters that do not belong in a phone number")
    digits = re.sub(r"[^0-9]", "", text)
    if not digits:
        raise InvalidNumber(f"{shown} contains no digits")
    if len(digits) > MAX_DIGITS:
        raise InvalidNumber(f"{shown} is too long: {len(digits)} digits (at most {MAX_DIGITS})")
    international = text.startswith("+")
    if dialled and not international and len(digits) <= 6 and _service_number(digits, region):
        return SERVICE_PREFIX + digits
    if not international and _EXTENSION.fullmatch(digits):
        return EXTENSION_PREFIX + digits

    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        raise InvalidNumber(f"{shown} is not a phone number ({_parse_error(exc)})") from None
    if _acceptable(number):
        return _e164(number, shown)
    if not international and not digits.startswith("0"):
        # A trunk that sends the country code without "+" or "00".
        try:
            alt = phonenumbers.parse("+" + digits, None)
        except NumberParseException:
            alt = None
        if alt is not None and phonenumbers.is_valid_number(alt):
            return _e164(alt, shown)
    why = _REASONS.get(phonenumbers.is_possible_number_with_reason(number), "not an allocated number range")
    where = "" if international else f" for region {region}"
    raise InvalidNumber(f"{shown} is not a valid phone number{where}: {why}")


def _e164(number: phonenumbers.PhoneNumber, shown: str) -> str:
    out = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    if len(out) - 1 > 15:
        raise InvalidNumber(f"{shown} is longer than the 15 digits an international number can have")
    return out


def _acceptable(number: phonenumbers.PhoneNumber) -> bool:
    if phonenumbers.is_valid_number(number):
        return True
    nsn = phonenumbers.national_significant_number(number)
    return number.country_code == 44 and len(nsn) == 10 and nsn.startswith(_OFCOM_DRAMA_PREFIXES)


def _unwrap(raw: str) -> str:
    """Strip quotes and angle brackets; reduce sip:/sips:/tel: URIs to their user part."""
    text = raw.strip()
    for _ in range(3):
        text = text.strip().strip("\"'").strip().removeprefix("<").removesuffix(">").strip()
    lowered = text.lower()
    for scheme in ("sip:", "sips:", "tel:"):
        if lowered.startswith(scheme):
            text = text[len(scheme) :]
            text = text.split(";", 1)[0]
            if "@" in text and text.split("@", 1)[1].lower() != "anonymous.invalid":
                text = text.split("@", 1)[0]
            break
    return text.strip()


def _parse_error(exc: NumberParseException) -> str:
    msg = getattr(exc, "_msg", "") or str(exc)
    return msg.rstrip(".").lower() if msg else "unreadable"


def _shown(raw: str) -> str:
    text = raw if len(raw) <= 40 else raw[:37] + "..."
    return repr(text)
