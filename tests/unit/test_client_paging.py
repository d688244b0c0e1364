"""Link-header pagination (tags list and catalog)."""

from __future__ import annotations

import pytest

from keelhaul.client.paging import first_page_url, next_page_url

pytestmark = pytest.mark.unit

BASE = "http://127.0.0.1:5000/v2/_catalog?n=2"


def test_relative_next_link_is_resolved() -> None:
    link = '</v2/_catalog?last=b&n=2>; rel="next"'
    assert next_page_url([link], BASE) == "http://127.0.0.1:5000/v2/_catalog?last=b&n=2"


def test_absolute_and_unquoted_rel() -> None:
    link = "<https://other/v2/x/tags/list?last=9&n=5>;rel=next"
    assert next_page_url([link], BASE) == "https://other/v2/x/tags/list?last=9&n=5"


def test_several_links_pick_next() -> None:
    links = ['</first>; rel="first", </v2/_catalog?last=d&n=2>; rel="prev next"']
    assert next_page_url(links, BASE) == "http://127.0.0.1:5000/v2/_catalog?last=d&n=2"


@pytest.mark.parametrize("links", [[], [""], ['</a>; rel="prev"'], ["garbage"]])
def test_last_page(links: list[str]) -> None:
    assert next_page_url(links, BASE) is None


def test_first_page_url() -> None:
    assert first_page_url("http://h/v2/_catalog", None) == "http://h/v2/_catalog"
    assert first_page_url("http://h/v2/_catalog", 3) == "http://h/v2/_catalog?n=3"
    assert first_page_url("http://h/v2/x", 3, "b/c") == "http://h/v2/x?n=3&last=b%2Fc"
