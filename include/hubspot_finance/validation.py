"""Parsers and validation rules for HubSpot values (all scalar, pure, never float).

Rules applied by :mod:`hubspot_finance.transform` (copy this table to the README):

| rule                          | applies to                                  | outcome                                        |
|-------------------------------|---------------------------------------------|------------------------------------------------|
| ``missing_id``                | any record without an id                    | **reject**                                     |
| ``invalid_id``                | id that is not all digits                   | **reject**                                     |
| ``missing_updated_at``        | no parseable ``updatedAt``                  | **reject** (ordering would be impossible)      |
| ``invalid_amount``            | deals ``amount`` not a plain decimal (``"12 000"``, ``"abc"``, ``"1,5"``, NaN/Infinity, > 30 integer or > 30 fraction digits) | **reject** |
| ``unknown_currency``          | deal currency not in the account's ``companyCurrency`` + ``additionalCurrencies`` (empty → company currency) | **reject** |
| ``invalid_close_date``        | ``close_date`` not a real date/datetime (``2024-02-30``) | **reject**                          |
| ``invalid_amount_home_currency`` | ``amount_in_home_currency`` malformed    | load, column NULL, warning                     |
| ``invalid_email``             | e-mail failing email-validator (no DNS)     | load, column NULL, warning                     |
| ``invalid_phone``             | phone not parseable (default region NO)     | load, column NULL, warning                     |
| ``invalid_orgnr``             | organisation number failing stdnum.no.orgnr | load, column NULL, warning                     |
| ``unknown_stage``             | deal stage id not in any pipeline (archived stages count) | load, labels/is_closed/is_won NULL, warning |
| ``unknown_pipeline``          | pipeline id unknown                         | load, pipeline_label NULL, warning             |
| ``invalid_created_at``        | no parseable ``createdAt``                  | load, created_at NULL, warning                 |
| ``invalid_value``             | an extra mapped column's value does not parse as its declared type | load, column NULL, warning |
| duplicates                    | same id more than once in a run             | newest ``updated_at`` wins (ties: last read)   |

A rejected record goes to ``rejected_records`` with *all* its reasons and the raw record; a warning is
kept in the row's ``validation_warnings`` JSON list and counted in the run summary. Values that fail a
rule always stay visible in the row's ``properties`` JSON (the raw HubSpot strings).
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.no import orgnr as _orgnr

MAX_INTEGER_DIGITS = 30
MAX_FRACTION_DIGITS = 30
_DECIMAL_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,4})?$", re.ASCII)
_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$", re.ASCII)
_DIGITS_RE = re.compile(r"^\d{1,15}$", re.ASCII)
# A strict, plainly valid ASCII address shape; anything else goes through email-validator.
_SIMPLE_EMAIL_RE = re.compile(
    r"^[a-z0-9](?:[a-z0-9_+\-]|\.(?!\.)){0,62}[a-z0-9_\-]?@(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}$"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off"})


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def parse_decimal(value: str | None) -> Decimal | None:
    """A plain decimal number (optionally with exponent) → exact Decimal; blank → None; else ValueError."""
    if _blank(value):
        return None
    s = str(value).strip()
    if not _DECIMAL_RE.match(s):
        raise ValueError(f"{value!r} is not a decimal number")
    try:
        d = Decimal(s)
    except InvalidOperation:  # pragma: no cover - the regex already excludes these
        raise ValueError(f"{value!r} is not a decimal number") from None
    if d.is_zero():
        d = abs(d)  # no negative zero
    if (not d.is_zero() and d.adjusted() >= MAX_INTEGER_DIGITS) or -d.as_tuple().exponent > MAX_FRACTION_DIGITS:
        raise ValueError(f"{value!r} is out of range")
    return d


def format_decimal(d: Decimal) -> str:
    """Canonical plain text of an exact decimal: no exponent, no trailing fraction zeros, no ``-0``.

    ``1E+3`` → ``1000``, ``100.50`` → ``100.5``, ``7.00`` → ``7``. One text per value, so SQLite (text)
    and PostgreSQL (NUMERIC) store, compare and report the same thing in ``contract_changes``.
    """
    if d.as_tuple().exponent > 0:
        d = d.quantize(Decimal(1))
    s = format(d, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def parse_datetime(value: str | None) -> datetime | None:
    """ISO-8601 (``Z``/offset; naive = UTC) or epoch milliseconds (digits) → aware UTC datetime."""
    if _blank(value):
        return None
    s = str(value).strip()
    if _DIGITS_RE.match(s) or (s.isdigit() and s.isascii()):
        if len(s) > 15:
            raise ValueError(f"{value!r} is not a timestamp")
        try:
            return _EPOCH + timedelta(milliseconds=int(s))  # exact: no float
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"{value!r} is not a timestamp") from None
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO-8601 date-time") from None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def parse_date(value: str | None) -> date | None:
    """``YYYY-MM-DD`` → date (impossible dates such as 2024-02-30 raise); epoch ms → its UTC date."""
    if _blank(value):
        return None
    s = str(value).strip()
    m = _DATE_RE.match(s)
    if m:
        try:
            return date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            raise ValueError(f"{value!r} is not a valid date") from None
    if s.isdigit():
        return parse_datetime(s).date()  # type: ignore[union-attr]
    raise ValueError(f"{value!r} is not a date")


def parse_bool(value: str | None) -> bool | None:
    if _blank(value):
        return None
    s = str(value).strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ValueError(f"{value!r} is not a boolean")


def split_multi(value: str | None) -> list[str] | None:
    """Multi-select ``a;b;c`` → ``["a", "b", "c"]`` (empty items dropped); blank → None."""
    if _blank(value):
        return None
    return [item.strip() for item in str(value).split(";") if item.strip()]


def parse_orgnr(value: str | None) -> str | None:
    """Norwegian organisation number → its 9 digits (spaces, ``NO`` prefix, ``MVA`` suffix tolerated)."""
    if _blank(value):
        return None
    s = str(value).strip().upper().replace(" ", "").replace("-", "").replace(".", "")
    if s.startswith("NO"):
        s = s[2:]
    if s.endswith("MVA"):
        s = s[:-3]
    try:
        return _orgnr.validate(s)
    except StdnumError:
        raise ValueError(f"{value!r} is not a valid Norwegian organisation number") from None


@lru_cache(maxsize=65536)
def normalize_email(value: str | None) -> str | None:
    """Trimmed, lower-cased address if email-validator accepts it (no DNS); blank → None."""
    if _blank(value):
        return None
    s = str(value).strip().lower()
    if _SIMPLE_EMAIL_RE.match(s) and len(s) <= 254:
        return s
    try:
        validate_email(s, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not a valid e-mail address: {exc}") from None
    return s


_NO_FAST_RE = re.compile(r"^(?:\+47|0047)?([1-9][0-9]{7})$", re.ASCII)


def normalize_phone(value: str | None, region: str = "NO") -> str | None:
    """Phone number → E.164 (default region ``region``); unparseable or impossible → ValueError.

    Plain 8-digit Norwegian numbers (optionally ``+47``/``0047``, spaces ignored) take a fast path that
    gives exactly what phonenumbers gives (``is_possible_number`` is length-based; NO numbers have 8
    digits); everything else goes through phonenumbers.
    """
    import phonenumbers

    if _blank(value):
        return None
    s = str(value).strip()
    m = _NO_FAST_RE.match(s.replace(" ", "")) if region == "NO" or s.startswith(("+47", "0047")) else None
    if m and (region == "NO" or s.startswith("+47")):
        return "+47" + m.group(1)
    try:
        num = phonenumbers.parse(s, region)
    except phonenumbers.NumberParseException:
        raise ValueError(f"{value!r} is not a phone number") from None
    if not phonenumbers.is_possible_number(num):
        raise ValueError(f"{value!r} is not a possible phone number")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def is_hubspot_id(value: object) -> bool:
    return isinstance(value, str) and bool(_DIGITS_RE.match(value))
