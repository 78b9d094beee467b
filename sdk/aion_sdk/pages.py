"""Cursor pagination: a list answers ``{"items": [...], "next_cursor": ...}``; the next page is
the same request with ``cursor=<next_cursor>``. Cursors are keyset positions, so iterating
while rows are added neither skips nor repeats a row.

A page is iterable over every item from it to the end of the list (fetching further pages as
it goes); ``.items`` is this page's items only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None
    _fetch: Callable[[str], Page[T]] = field(repr=False, compare=False)

    @property
    def has_next(self) -> bool:
        return self.next_cursor is not None

    def next_page(self) -> Page[T] | None:
        return None if self.next_cursor is None else self._fetch(self.next_cursor)

    def pages(self) -> Iterator[Page[T]]:
        """This page and every one after it."""
        page: Page[T] | None = self
        while page is not None:
            yield page
            page = page.next_page()

    def __iter__(self) -> Iterator[T]:
        for page in self.pages():
            yield from page.items


@dataclass(frozen=True)
class AsyncPage(Generic[T]):
    items: list[T]
    next_cursor: str | None
    _fetch: Callable[[str], Awaitable[AsyncPage[T]]] = field(repr=False, compare=False)

    @property
    def has_next(self) -> bool:
        return self.next_cursor is not None

    async def next_page(self) -> AsyncPage[T] | None:
        return None if self.next_cursor is None else await self._fetch(self.next_cursor)

    async def pages(self) -> AsyncIterator[AsyncPage[T]]:
        page: AsyncPage[T] | None = self
        while page is not None:
            yield page
            page = await page.next_page()

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.pages():
            for item in page.items:
                yield item


def page_parts(body: Any) -> tuple[list[Any], str | None]:
    """The items and next cursor of a list answer (a list without cursors has none)."""
    if not isinstance(body, dict):
        raise ValueError("a list answer is a JSON object with items")
    items = body.get("items") or []
    cursor = body.get("next_cursor")
    return cast(list[Any], items), None if cursor is None else str(cursor)
