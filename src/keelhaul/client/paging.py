"""Pagination through RFC 8288 ``Link`` headers (tags list, catalog). Pure.

The registry answers a page with ``Link: </v2/_catalog?last=b&n=2>; rel="next"``; the target
is relative to the request URL. No ``Link`` (or no ``rel="next"``) means the last page.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlencode, urljoin

__all__ = ["first_page_url", "next_page_url"]

_LINK_RE = re.compile(r"<([^>]*)>((?:\s*;\s*[^,;<]*)*)")
_REL_RE = re.compile(r"""\s*;\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))""", re.IGNORECASE)


def next_page_url(link_headers: Iterable[str], request_url: str) -> str | None:
    """The absolute URL of the next page, or ``None`` on the last page."""
    for header in link_headers:
        for match in _LINK_RE.finditer(header):
            target, params = match.group(1), match.group(2)
            for rel in _REL_RE.finditer(params):
                relations = (rel.group(1) or rel.group(2) or "").lower().split()
                if "next" in relations:
                    return str(urljoin(request_url, target.strip()))
    return None


def first_page_url(base: str, page_size: int | None, last: str | None = None) -> str:
    """``base`` with ``n=`` (and ``last=``) when asked for; the registry's default otherwise."""
    query: dict[str, str] = {}
    if page_size is not None:
        query["n"] = str(page_size)
    if last is not None:
        query["last"] = last
    return f"{base}?{urlencode(query)}" if query else base
