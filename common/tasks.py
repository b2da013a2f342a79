"""One owner for background tasks: ``Supervisor``. The router, the station, the node and the
peer create every long-lived or fire-and-forget task through one.

Contract:
- ``spawn(coro, name)`` starts a task the supervisor owns until it ends. An exception it
  raises is logged at once (ERROR, with the traceback, the supervisor's and the task's name
  and the context fields given) and counted in ``failures``: no task's exception goes unseen,
  and none is re-raised into an unrelated place (a sibling, the caller of ``aclose``).
- ``keep(name, factory)`` runs ``factory()`` as a named loop that must not end: when it raises
  it is logged like any task and started again after ``restart_s`` (doubling to
  ``restart_max_s`` while it keeps failing fast). Returning normally ends it.
- ``aclose()`` cancels every task it owns and awaits them all; afterwards ``spawn`` refuses
  (raises ``SupervisorClosed``) so nothing starts behind a closed owner's back.
- Cancellation is not a failure: a task cancelled by anyone is not logged.

Why not a bare ``asyncio.TaskGroup``: one failing child cancels the group and its parent
(a peer whose close fails would take the station down), and its scope must be entered and
left by the same task, which ``start()``/``aclose()`` pairs called from different tasks (test
fixtures, lifespans) do not guarantee. The supervisor keeps TaskGroup's ownership rule (every
task awaited before its owner is gone) without either.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from common.errors import BatonError

log = logging.getLogger("baton.tasks")


class SupervisorClosed(BatonError):
    """``spawn`` after ``aclose``: the owner is gone; nothing may start behind its back."""

    reason = "supervisor_closed"


class Supervisor:
    def __init__(self, name: str, *, logger: logging.Logger | None = None,
                 context: dict[str, Any] | None = None):
        self.name = name
        self.log = logger or log
        self.context = dict(context or {})
        self.failures = 0
        self.last_failure: BaseException | None = None
        self._tasks: set[asyncio.Task] = set()
        self._closed = False

    # --- starting -----------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str, **context: Any) -> asyncio.Task:
        if self._closed:
            coro.close()  # never awaited otherwise: no "coroutine was never awaited" noise
            raise SupervisorClosed(f"{self.name} is closed; cannot start {name}")
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._done(t, name, context))
        return task

    def keep(self, name: str, factory: Callable[[], Awaitable[Any]], *,
             restart_s: float = 0.5, restart_max_s: float = 30.0,
             **context: Any) -> asyncio.Task:
        """A loop that is started again whenever it raises (each failure logged)."""
        return self.spawn(self._keep(name, factory, restart_s, restart_max_s, context),
                          name, **context)

    async def _keep(self, name: str, factory: Callable[[], Awaitable[Any]],
                    restart_s: float, restart_max_s: float, context: dict[str, Any]) -> None:
        delay = restart_s
        while True:
            started = time.monotonic()
            try:
                await factory()
                return
            except Exception as exc:  # noqa: BLE001 - logged, counted, restarted
                self._failed(name, exc, context, restarting=True)
            # A loop that held for a while starts again quickly; one that keeps failing at
            # once backs off, so a broken dependency is not hammered.
            if time.monotonic() - started > restart_max_s:
                delay = restart_s
            await asyncio.sleep(delay)
            delay = min(restart_max_s, delay * 2)

    # --- ending -------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def tasks(self) -> frozenset[asyncio.Task]:
        return frozenset(self._tasks)

    async def aclose(self) -> None:
        """Cancel every owned task and wait for all of them (also those that ignore one
        cancellation and finish their cleanup)."""
        self._closed = True
        while self._tasks:
            pending = list(self._tasks)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            self._tasks.difference_update(pending)

    async def __aenter__(self) -> Supervisor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- bookkeeping --------------------------------------------------------------------

    def _done(self, task: asyncio.Task, name: str, context: dict[str, Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()  # retrieved here: asyncio never reports it "unretrieved"
        if exc is not None:
            self._failed(name, exc, context, restarting=False)

    def _failed(self, name: str, exc: BaseException, context: dict[str, Any],
                restarting: bool) -> None:
        self.failures += 1
        self.last_failure = exc
        self.log.error("task failed" + ("; starting it again" if restarting else ""),
                       exc_info=(type(exc), exc, exc.__traceback__),
                       extra={"owner": self.name, "task": name,
                              "error": f"{type(exc).__name__}: {exc}",
                              **self.context, **context})
