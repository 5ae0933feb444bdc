"""Property-based tests of the scalar parsers (decimal, datetime, date, bool, orgnr) plus fixed cases."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubspot_finance import validation as v

FAST = settings(max_examples=150, deadline=None)


@FAST
@given(st.integers(0, 12).flatmap(lambda p: st.decimals(allow_nan=False, allow_infinity=False, places=p,
                                                        min_value=Decimal("-1e20"), max_value=Decimal("1e20"))))
def test_decimal_roundtrip_exact(d):
    text = v.format_decimal(d)
    parsed = v.parse_decimal(text)
    assert parsed == d and "E" not in v.format_decimal(parsed)


@FAST
@given(st.integers(-(10**15), 10**15), st.integers(0, 10))
def test_decimal_from_scaled_integers_is_exact(n, scale):
    text = str(Decimal(n).scaleb(-scale))
    assert v.parse_decimal(text) == Decimal(n).scaleb(-scale)


@FAST
@given(st.text(alphabet=" ,abcx_$€", min_size=1).filter(lambda s: s.strip()))
def test_decimal_rejects_non_numbers(s):
    with pytest.raises(ValueError):
        v.parse_decimal(s)


@pytest.mark.parametrize("text, expected", [("0.1", "0.1"), ("0.2", "0.2"), ("1234567890.12", "1234567890.12"), ("1e3", "1000"),
                                            ("-0.0", "0"), (" 12.50 ", "12.5"), ("+5", "5"), (".5", "0.5"),
                                            ("100.00", "100"), ("1.10E+2", "110"), ("0.000", "0"), ("-1.50", "-1.5")])
def test_decimal_cases(text, expected):
    assert v.format_decimal(v.parse_decimal(text)) == expected
    assert v.parse_decimal("0.1") + v.parse_decimal("0.2") == Decimal("0.3")


@pytest.mark.parametrize("text", ["12 000", "abc", "1,5", "NaN", "Infinity", "1e999", "1" * 31, "0." + "1" * 31, "--1"])
def test_decimal_rejects(text):
    with pytest.raises(ValueError):
        v.parse_decimal(text)


DT = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(timezone.utc)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))


@FAST
@given(DT)
def test_datetime_iso_and_epoch_ms_roundtrip(d):
    iso = d.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert v.parse_datetime(iso) == d
    assert v.parse_datetime(str((d - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(milliseconds=1))) == d
    assert v.parse_datetime(d.astimezone(timezone(timedelta(hours=5))).isoformat()) == d


@pytest.mark.parametrize("text", ["2024-13-01T00:00:00Z", "yesterday", "2024-02-30T00:00:00Z", "9" * 16])
def test_datetime_rejects(text):
    with pytest.raises(ValueError):
        v.parse_datetime(text)


@FAST
@given(st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)))
def test_date_roundtrip(d):
    assert v.parse_date(d.isoformat()) == d


@pytest.mark.parametrize("text", ["2024-02-30", "2023-02-29", "2024-00-10", "31.12.2024"])
def test_impossible_dates_rejected(text):
    with pytest.raises(ValueError):
        v.parse_date(text)


@FAST
@given(st.sampled_from(["true", "TRUE", "True", "1", "yes", "false", "False", "0", "no"]))
def test_bool(s):
    assert v.parse_bool(s) is (s.lower() in ("true", "1", "yes"))


@FAST
@given(st.text(min_size=1).filter(lambda s: s.strip().lower() not in v._TRUE | v._FALSE and s.strip()))
def test_bool_rejects(s):
    with pytest.raises(ValueError):
        v.parse_bool(s)


def _orgnr_with_check(first8: str) -> str | None:
    weights = (3, 2, 7, 6, 5, 4, 3, 2)
    r = 11 - sum(w * int(c) for w, c in zip(weights, first8)) % 11
    if r == 10:
        return None
    return first8 + str(0 if r == 11 else r)


@FAST
@given(st.from_regex(r"\A[89][0-9]{7}\Z"), st.integers(1, 9))
def test_orgnr_check_digit(first8, delta):
    nr = _orgnr_with_check(first8)
    if nr is None:
        return
    assert v.parse_orgnr(nr) == nr
    assert v.parse_orgnr(f"NO {nr[:3]} {nr[3:6]} {nr[6:]} MVA") == nr
    bad = nr[:8] + str((int(nr[8]) + delta) % 10)
    with pytest.raises(ValueError):
        v.parse_orgnr(bad)


def test_non_ascii_digits_are_not_ids_or_numbers():
    assert not v.is_hubspot_id("12\u0663")
    with pytest.raises(ValueError):
        v.parse_decimal("\u0661\u0662")


def test_email_and_phone():
    assert v.normalize_email("  Ola.Nordmann@Example.NO ") == "ola.nordmann@example.no"
    assert v.normalize_email("ola+x@sub.example.no") == "ola+x@sub.example.no"
    for bad in ("bad@", "no-at-sign", "a@b", "a..b@example.no"):
        with pytest.raises(ValueError):
            v.normalize_email(bad)
    assert v.normalize_phone("22 33 44 55") == "+4722334455"
    assert v.normalize_phone("+46 8 123 456 78") == "+46812345678"
    for bad in ("abc", "12"):
        with pytest.raises(ValueError):
            v.normalize_phone(bad)
    assert v.split_multi("a; b;;c") == ["a", "b", "c"]


@FAST
@given(st.from_regex(r"\A(\+47|0047)?[0-9]{8}\Z"), st.booleans())
def test_phone_fast_path_matches_phonenumbers(num, spaced):
    import phonenumbers

    text = " ".join([num[: len(num) - 8], num[-8:-4], num[-4:]]).strip() if spaced else num
    try:
        parsed = phonenumbers.parse(text, "NO")
        expected = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) if phonenumbers.is_possible_number(parsed) else None
    except phonenumbers.NumberParseException:
        expected = None
    if expected is None:
        with pytest.raises(ValueError):
            v.normalize_phone(text, "NO")
    else:
        assert v.normalize_phone(text, "NO") == expected
