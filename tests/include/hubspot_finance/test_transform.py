"""Transform: every validation rule's outcome, labels, time zones, dedup, merges — on frames."""

from __future__ import annotations

import pandas as pd

from finance_testdata import ACCOUNT, PIPELINES, PROPERTIES, iso, rec
from hubspot_finance.mapping import load_mapping
from hubspot_finance.objects import OBJECTS
from hubspot_finance.rawzone import RawZone
from hubspot_finance.transform import Reference, transform_chunk

REF = Reference.from_objects(PROPERTIES, PIPELINES, ACCOUNT)


def frame(tmp_path, object_type, records):
    zone = RawZone(f"file://{tmp_path}")
    w = zone.record_writer(object_type, "r", OBJECTS[object_type].properties(load_mapping()))
    w.write(records)
    return pd.concat(list(zone.iter_frames(w.commit())), ignore_index=True)


def run(tmp_path, object_type, records):
    return transform_chunk(frame(tmp_path, object_type, records), object_type, mapping=load_mapping(), reference=REF, run_id="r")


def rules(result):
    return {r["hubspot_id"]: [x["rule"] for x in r["reasons"]] for r in result.rejects}


def test_deal_rejects_and_warnings(tmp_path):
    res = run(tmp_path, "deals", [
        rec("1", iso(2), amount="12 000"),
        rec("2", iso(2), amount="abc", deal_currency_code="SEK", closedate="2024-02-30"),
        rec("3", iso(2), amount="1", amount_in_home_currency="n/a", dealstage="nope", pipeline="zzz"),
        rec(None, iso(2)),
        rec("x7", iso(2)),
        rec("4", "garbage"),
        rec("5", iso(2), amount="", deal_currency_code="usd", dealstage="888", pipeline="777", closedate="1711929600000"),
    ])
    assert rules(res) == {"1": ["invalid_amount"], "2": ["invalid_amount", "unknown_currency", "invalid_close_date"],
                          None: ["missing_id"], "x7": ["invalid_id"], "4": ["missing_updated_at"]}
    rows = res.rows.set_index("hubspot_deal_id")
    assert list(rows.index) == ["3", "5"]
    r3 = rows.loc["3"]
    assert (r3.amount, r3.amount_home_currency, r3.stage_label, r3.is_closed, r3.pipeline_label) == ("1", None, None, None, None)
    assert res.warnings == {"invalid_amount_home_currency": 1, "unknown_stage": 1, "unknown_pipeline": 1}
    r5 = rows.loc["5"]
    assert (r5.amount, r5.currency, r5.stage_label, r5.is_won, str(r5.close_date)) == (None, "USD", "Renewed", True, "2024-04-01")


def test_contact_fields_are_nulled_with_warnings(tmp_path):
    res = run(tmp_path, "contacts", [rec("1", iso(2), email="not-an-email", phone="abc", firstname="  Kari "),
                                     rec("2", iso(2), email="Kari@Example.no", phone="+47 912 34 567")])
    rows = res.rows.set_index("hubspot_contact_id")
    assert (rows.loc["1"].email, rows.loc["1"].phone, rows.loc["1"].first_name) == (None, None, "Kari")
    assert (rows.loc["2"].email, rows.loc["2"].phone) == ("kari@example.no", "+4791234567")
    assert res.warnings == {"invalid_email": 1, "invalid_phone": 1}
    assert [w["rule"] for w in __import__("json").loads(rows.loc["1"].validation_warnings)] == ["invalid_email", "invalid_phone"]
    assert res.rejects == []


def test_company_orgnr_and_merges(tmp_path):
    res = run(tmp_path, "companies", [rec("10", iso(2), org_number="974760674"),
                                      rec("11", iso(3), org_number="974760673", hs_merged_object_ids="12;13;11")])
    rows = res.rows.set_index("hubspot_company_id")
    assert rows.loc["10"].organization_number is None and rows.loc["11"].organization_number == "974760673"
    assert res.warnings == {"invalid_orgnr": 1}
    assert [(a, s, u.isoformat()) for a, s, u in res.merges] == [("12", "11", "2024-01-03T00:00:00+00:00"), ("13", "11", "2024-01-03T00:00:00+00:00")]


def test_dedup_and_archived(tmp_path):
    res = run(tmp_path, "contacts", [rec("1", iso(3), firstname="new"), rec("1", iso(2), firstname="old"),
                                     rec("2", iso(4), archived=True), rec("2", iso(4), archived=True, archived_at=iso(4, 2))])
    rows = res.rows.set_index("hubspot_contact_id")
    assert rows.loc["1"].first_name == "new"
    assert bool(rows.loc["2"].is_deleted) and rows.loc["2"].deleted_at.isoformat() == "2024-01-04T02:00:00+00:00"
    assert res.extracted == 4 and len(res.rows) == 2


def test_close_date_in_account_time_zone():
    ref_utc = Reference.from_objects(PROPERTIES, PIPELINES, {**ACCOUNT, "timeZone": "UTC"})
    assert ref_utc.time_zone == "UTC" and REF.time_zone == "Europe/Oslo"
    assert REF.currencies == {"NOK", "EUR", "USD"} and REF.company_currency == "NOK"
    assert REF.stages[("default", "oldstage")].archived and REF.stages[("default", "closedlost")].is_won is False


def test_vectorised_fast_paths_match_the_scalar_parsers():
    """Every fast path gives exactly what the scalar parser gives (value, or the same warning/reject)."""
    from zoneinfo import ZoneInfo

    from hubspot_finance import transform as t
    from hubspot_finance import validation as v

    def both(values, fast, scalar):
        s = pd.Series(values, dtype="str" if all(x is None or isinstance(x, str) for x in values) else object)
        i1, i2 = t._Issues(s.index), t._Issues(s.index)
        got = fast(s, i1)
        want = t._apply(s.astype(object).where(s.notna(), None), scalar, i2, rule="r", field_="f", reject=False)
        assert got.tolist() == want.tolist()
        assert sorted({**i1.reasons, **i1.warns}) == sorted({**i2.reasons, **i2.warns})

    emails = [" Ola@Example.NO ", "a..b@x.no", "a.@x.no", "kari@example.no", "x@y", "Øst@eksempel.no", "\u00a0a@b.no",
              "", "  ", None, "a@b.c0", "a" * 70 + "@x.no", "ola@sub.example.travel", "İ@x.no", "a+b@x.no", "\x1ca@b.no"]
    both(emails, lambda s, i: t._emails(s, i, "f"), v.normalize_email)
    phones = ["+47 912 34 567", "91234567", "0047 91234567", "01234567", "+46 70 123 45 67", "12 34", "", None,
              "\t91234567", "+47\u00a091234567", "+4791234567 ", "9123 4567"]
    both(phones, lambda s, i: t._phones(s, "NO", i, "f"), lambda x: v.normalize_phone(x, "NO"))
    money = ["100.50", "0", "-0", "-0.00", "0.10", "-12.5", "012", "1e3", "12 000", "1,5", "abc", "", " 5 ", None, "1.",
             ".5", "+7", "9" * 31, "1." + "0" * 31, "-0.5", "NaN"]
    both(money, lambda s, i: t._money(s, i, "f", "r", False),
         lambda x: (lambda d: None if d is None else v.format_decimal(d))(v.parse_decimal(x)))
    tz = ZoneInfo("Europe/Oslo")
    dates = ["2024-06-30T22:00:00.000Z", "2024-06-30T21:59:59Z", "2024-02-30", "2024-02-29", "1711929600000",
             "2024-06-30T22:00:00+02:00", " 2024-01-01", "garbage", "", None, "2024-12-31T23:30:00.000000Z"]
    for ptype in ("datetime", "date", None):
        both(dates, lambda s, i: t._close_dates(s, ptype, tz, i, "f"), t._close_date_parser(ptype, tz))
    texts = [" a ", "b", "", "  ", None, "\u00a0x\u3000", "\x1cq", "Bodø"]
    s = pd.Series(texts, dtype="str")
    assert t._clean_text(s).tolist() == [None if x is None else (x.strip() or None) for x in texts]
    props = pd.DataFrame({"p:b": pd.Series(['q"\\/x', None, "\n\u2028æ"], dtype="str"), "p:a": pd.Series(["1", "2", None], dtype="str")})
    assert [__import__("json").loads(x) for x in t._properties_json(props)] == [
        {"a": "1", "b": 'q"\\/x'}, {"a": "2", "b": None}, {"a": None, "b": "\n\u2028æ"}]
