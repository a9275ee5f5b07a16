"""The context-manager protocol every server-like class shares: start on enter, stop on exit."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

_Managed = TypeVar("_Managed", bound="StartStopContext")


class StartStopContext(ABC):
    """``with thing:`` starts it and stops it, whatever the block raises."""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    def __enter__(self: _Managed) -> _Managed:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def finish_despite_interrupts(cleanup: Callable[[], None]) -> None:
    """Run ``cleanup`` to its end even when Ctrl-C arrives meanwhile, then raise that interrupt.

    A process that survives a KeyboardInterrupt (a REPL, a notebook, a runner that catches
    it) must not be left with an etcd its object no longer knows. ``cleanup`` must be safe to
    run again from the start, as every ``discard``/``remove`` here is.
    """
    interrupted: KeyboardInterrupt | None = None
    while True:
        try:
            cleanup()
        except KeyboardInterrupt as error:
            interrupted = error
            continue
        break
    if interrupted is not None:
        raise interrupted
