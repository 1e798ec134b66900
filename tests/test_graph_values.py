"""Attribute value normalisation, price parsing and price buckets."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esrgraph.graph.config import DEFAULT_PLACEHOLDERS
from esrgraph.graph.normalise import Normaliser, normalise_text
from esrgraph.graph.prices import assign_buckets, bucket_bounds, bucket_edges, bucket_label, num_buckets, parse_price


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("L&#39;Oreal Paris", "l'oreal paris"),
        ("  Dolce &amp; Gabbana ", "dolce & gabbana"),
        ("loel&amp;reg", "loel®"),  # escaped twice in the source
        ("WEN&reg; by Chaz Dean", "wen® by chaz dean"),
        ("ＯＰＩ", "opi"),  # full-width letters (NFKC)
        ("Stra\u00dfe", "strasse"),  # case folding, not just lower()
        ("e.l.f.\tCosmetics\n", "e.l.f. cosmetics"),
        ("<b>Bold</b> brand", "bold brand"),
        ("Caf\u0065\u0301", "café"),  # combining accent composed
        ("a < b > c", "a < b > c"),  # angle brackets in text are not markup
    ],
)
def test_normalise_text(raw, expected):
    assert normalise_text(raw) == expected


@pytest.mark.parametrize(
    "raw", ["Unknown", " N/A ", "none", "NULL", "nan", "", "   ", "-", "&nbsp;", "</span></span>", "Not Available"]
)
def test_placeholders_are_missing(raw):
    assert Normaliser(DEFAULT_PLACEHOLDERS)(raw) is None


def test_placeholder_list_is_configurable_and_normalised():
    norm = Normaliser(["Generic", "  NO BRAND "])
    assert norm("generic") is None and norm("No  Brand") is None
    assert norm("Unknown") == "unknown"  # not in this list
    assert norm(None) is None


def test_category_path_merges_repeats_and_stops_at_missing():
    norm = Normaliser(DEFAULT_PLACEHOLDERS)
    assert norm.path(["Gift Cards", "Gift Cards"]) == ("gift cards",)
    assert norm.path(["Beauty", "beauty ", "Makeup", "Makeup", "Nails"]) == ("beauty", "makeup", "nails")
    assert norm.path(["Beauty", "Unknown", "Nails"]) == ("beauty",)
    assert norm.path(["A", "B", "A"]) == ("a", "b", "a")  # only a repeat of the level above is merged
    assert norm.path([]) == ()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("$12.99", 12.99),
        ("12.99", 12.99),
        ("1,299.00", 1299.0),
        ("$1,250.00", 1250.0),
        ("€5", 5.0),
        ("£3.50", 3.5),
        ("¥1,000", 1000.0),
        ("12.99 EUR", 12.99),
        ("US$ 3", 3.0),
        ("$ 12", 12.0),
        (" 7 ", 7.0),
        ("$5.00 - $9.99", 7.495),
        ("5 to 10", 7.5),
        ("$5.00–$9.00", 7.0),
        (".5", 0.5),
        ("１２.５", 12.5),
        (12, 12.0),
        ("", None),
        ("   ", None),
        ("garbage", None),
        ("n/a", None),
        ("12,99", None),
        ("1.299,00", None),
        ("-5", None),
        ("0", None),
        ("$0.00", None),
        ("1.2.3", None),
        ("nan", None),
        ("inf", None),
        ("1e5", None),
        ("$5 - $10 - $15", None),
        ("$5.00 - ", None),
        ("abc 12", None),
        ("<div class=price>12</div>", None),
        (None, None),
        (True, None),
        (float("nan"), None),
        ([12], None),
        # letters next to a number are a price only as a currency code: not model numbers, not dates
        ("usd 12", 12.0),
        ("C$5", 5.0),
        ("CHF 12", 12.0),
        ("A12", None),
        ("B07", None),
        ("ABC 123", None),
        ("2021-05", None),
        ("$9.99 - $5.00", None),
        (np.float32(3.5), 3.5),
        (np.int64(7), 7.0),
    ],
)
def test_parse_price(text, expected):
    got = parse_price(text)
    assert got == pytest.approx(expected) if expected is not None else got is None


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.text(), st.text(alphabet="$€£,.-– 0123456789toUSD"), st.binary().map(lambda b: b.decode("latin-1")))
)
def test_parse_price_never_raises(text):
    got = parse_price(text)
    assert got is None or (isinstance(got, float) and math.isfinite(got) and got > 0)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10**10), st.sampled_from(["${:,.2f}", "{:.2f}", "{:,.2f}", "€{:.2f}", "{:.2f} USD"]))
def test_formatted_prices_round_trip(cents, template):
    assert parse_price(template.format(cents / 100)) == pytest.approx(cents / 100)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0.01, 1e6), min_size=1, max_size=60), st.integers(1, 12), st.sampled_from(["quantile", "log"])
)
def test_buckets_monotone_in_price(prices, buckets, method):
    prices = np.array(prices)
    edges = bucket_edges(prices, buckets, method)
    assert np.all(np.diff(edges) > 0) and edges[0] == prices.min() and edges[-1] == prices.max()
    assert 1 <= num_buckets(edges) <= buckets
    index = assign_buckets(prices, edges)
    order = np.argsort(prices, kind="stable")
    assert np.all(np.diff(index[order]) >= 0)
    assert index.min() >= 0 and index.max() < num_buckets(edges)
    for price, k in zip(prices, index):
        low, high = bucket_bounds(edges, int(k))
        assert low <= price <= high


def test_quantile_and_log_edges():
    prices = np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    assert bucket_edges(prices, 2, "quantile").tolist() == [1.0, 5.5, 10.0]
    assert assign_buckets(prices, bucket_edges(prices, 2, "quantile")).tolist() == [0] * 5 + [1] * 5
    log = bucket_edges(np.array([1.0, 10, 100, 1000]), 3, "log")
    assert np.allclose(log, [1, 10, 100, 1000])
    assert assign_buckets(np.array([1.0, 9.9, 10, 999, 1000]), log).tolist() == [0, 0, 1, 2, 2]
    same = bucket_edges(np.array([9.99, 9.99, 9.99]), 5, "quantile")
    assert same.tolist() == [9.99] and assign_buckets(np.array([9.99]), same).tolist() == [0]
    assert bucket_label(*bucket_bounds(same, 0)) == "9.99"
    assert bucket_label(5.991, 12) == "5.99 to 12.00"
    assert bucket_edges(np.array([]), 5, "quantile").size == 0
