"""The context-manager protocol every server-like class shares: start on enter, stop on exit."""

from __future__ import annotations

from abc import ABC, abstractmethod
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
