"""The context-manager protocol every server-like class shares: start on enter, stop on exit."""

from __future__ import annotations

import contextlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TypeVar

from .member import too_many_open_files

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


@contextlib.contextmanager
def one_start_at_a_time(lifecycle: threading.Lock, owner: StartStopContext) -> Iterator[None]:
    """Hold ``owner``'s ``lifecycle`` lock for a whole ``start()``, or refuse at once.

    A second thread's start would race the first for the same members, so it is an error, not
    a wait. Running out of file descriptors anywhere inside becomes one error saying so.
    """
    if not lifecycle.acquire(blocking=False):
        raise RuntimeError(
            f"this {type(owner).__name__} is being started or stopped by another thread; start() it once"
        )
    try:
        with too_many_open_files():
            yield
    finally:
        lifecycle.release()
