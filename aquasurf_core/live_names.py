"""A registry's names as a read-only sequence, read afresh at every use.

:class:`LiveNames` wraps a function that returns the names. Every operation (index, length,
iteration, ``in``) calls it again, so an entry registered after the sequence was made is in it
at once. ``models.BENCHMARK_ARCHS`` is one of these, and so are the command line's ``choices``,
which argparse then reads only when it checks a value or prints a message (such an option
needs an explicit ``metavar``: without one, argparse lists the choices as the option is added).

>>> names = ["a"]
>>> live = LiveNames(lambda: names)
>>> names.append("b")
>>> list(live), "b" in live, len(live), live[-1]
(['a', 'b'], True, 2, 'b')
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

__all__ = ["LiveNames"]


class LiveNames(Sequence):
    """The names ``read()`` returns, read at every use (``read``: a function of no arguments
    returning an iterable of names)."""

    def __init__(self, read: Callable[[], Iterable[str]]):
        self._read = read

    def _names(self) -> tuple[str, ...]:
        return tuple(self._read())

    def __getitem__(self, index):
        return self._names()[index]

    def __len__(self) -> int:
        return len(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __repr__(self) -> str:
        return repr(self._names())
