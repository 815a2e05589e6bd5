"""The mapper never emits what the sandbox (our independent statement of X's schema) refuses: the same
generated values, hostile ones included, go through both."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xgate.config import parse_config
from xgate.mapping import Mapper
from xgate.sandbox import check_request

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PIXEL = "o8z6j"
MAPPER = Mapper(
    parse_config(
        {"destinations": [{"name": "x", "pixel_id": PIXEL, "events": {"purchase": f"tw-{PIXEL}-o87ne"}}]}
    )
)

numbers = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([0, 1, 12.5, 1e12, 1e20, 2**63, 2**64 + 1]),
)
texts = st.one_of(
    st.none(),
    st.text(max_size=20),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=1100),
    st.sampled_from(["sku-1", "\x00", "a\nb", "\u200b", "\ufeffid", " ", "x" * 1001]),
)
ips = st.one_of(
    st.none(),
    st.ip_addresses().map(str),
    st.sampled_from(
        [
            "198.51.100.23:51234",
            "[2001:db8::7334]:443",
            "::ffff:198.51.100.23",
            "fe80::1%eth0",
            "localhost",
            "[::1",
            "1.2.3.4:",
        ]
    ),
    st.text(max_size=40),
)


def part(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


items = st.lists(
    part(
        id=texts,
        price=numbers,
        quantity=numbers,
        product=part(name=texts, price=numbers, group_id=texts, category_1=texts, category_2=texts),
    ),
    max_size=3,
)
events = st.fixed_dictionaries(
    {"event_name": st.just("purchase"), "user": st.just({"email": "ada@example.com"})},
    optional={
        "id": texts,
        "value": numbers,
        "currency": st.sampled_from(["EUR", "usd", "XXX", "€"]),
        "type": texts,
        "search_term": texts,
        "items": items,
        "context": part(ip=ips, user_agent=texts),
        "partners": part(twitter=part(twclid=texts)),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_whatever_the_mapper_emits_the_sandbox_accepts(event: dict[str, Any]) -> None:
    try:
        result = MAPPER.map(event, now=NOW, received_at=NOW)
    except ValueError:  # InvalidEvent: refused before mapping, with its reasons
        return
    for rejection in result.rejections:
        assert all(e.field and e.reason for e in rejection.errors)
    for conversion in result.conversions:
        assert check_request(PIXEL, {"conversions": [conversion.body]}, now=NOW) == []
