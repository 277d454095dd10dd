"""Transactions, as Prefect 3's `prefect.transactions`: groups of task runs that commit or
roll back together.

    with transaction() as txn:
        txn.set("path", path)
        write_file(path)        # completes: staged, not committed yet
        quality_test(path)      # fails: write_file's on_rollback hooks run, nothing commits

A transaction goes through BEGIN (a keyed one that committed before begins COMMITTED), STAGE
(a task run that completes inside it is staged as a child transaction, with its task's
`on_commit` / `on_rollback` hooks and its cache entry), then COMMIT or ROLLBACK:

- Leaving the block normally commits it, unless a parent transaction takes responsibility
  (then it commits with its parent). Committing commits the staged children first, which
  writes their cache entries and runs their `on_commit` hooks in order; a keyed
  transaction then records its key in the store, so `is_committed()` holds for the next
  one with that key.
- An exception leaving the block, or a task run inside it that ends without completing,
  rolls it back: the staged children's `on_rollback` hooks run, newest first, their cache
  entries are never written, and the rollback reaches the parent transaction.
- `commit_mode`: LAZY (the default) commits children with their parent; EAGER commits each
  child as it is staged, so there is nothing left to roll back; OFF never commits, and a
  top-level OFF transaction rolls back at the end of its block. Nested transactions inherit
  their parent's mode and isolation level.
- `isolation_level=SERIALIZABLE` on a keyed transaction holds a lock on the key (a file
  under `.orch/locks/`) from BEGIN to COMMIT or ROLLBACK, so concurrent transactions with
  the key, in any thread or process, run one after the other and the later ones begin
  COMMITTED. READ_COMMITTED (the default) takes no lock.

Values set with `txn.set(name, value)` are read with `txn.get(name)` in the transaction, its
children (such as the transaction a rollback hook receives) and its nested transactions.
Outside a `with transaction()` block a task run with commit or rollback hooks commits on
completion, and its `on_commit` hooks run then.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from enum import Enum
from typing import TYPE_CHECKING, Any

from .context import current_store, flow_run_var

if TYPE_CHECKING:
    from filelock import BaseFileLock

log = logging.getLogger("orchlite.transactions")


class IsolationLevel(Enum):
    READ_COMMITTED = "READ_COMMITTED"
    SERIALIZABLE = "SERIALIZABLE"


class CommitMode(Enum):
    EAGER = "EAGER"
    LAZY = "LAZY"
    OFF = "OFF"


class TransactionState(Enum):
    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    STAGED = "STAGED"
    COMMITTED = "COMMITTED"
    ROLLED_BACK = "ROLLED_BACK"


_NOT_SET: Any = object()
_current: ContextVar[Transaction | None] = ContextVar("orch_transaction", default=None)


class Transaction:
    """One transaction: its key, state, staged children, hooks and values."""

    def __init__(
        self,
        key: str | None = None,
        *,
        commit_mode: CommitMode | None = None,
        isolation_level: IsolationLevel | None = None,
        overwrite: bool = False,
        write_on_commit: bool = True,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        parent: Transaction | None = None,
    ) -> None:
        self.key = key
        self.commit_mode = commit_mode
        self.isolation_level = isolation_level
        self.overwrite = overwrite
        self.write_on_commit = write_on_commit
        self.logger = logger or log
        self.state = TransactionState.PENDING
        self.children: list[Transaction] = []
        self.on_commit_hooks: list[Callable[[Transaction], Any]] = []
        self.on_rollback_hooks: list[Callable[[Transaction], Any]] = []
        self._parent = parent
        self._values: dict[str, Any] = {}
        self._publish: Callable[[], None] | None = None
        self._token: Token[Transaction | None] | None = None
        self._file_lock: BaseFileLock | None = None
        self._lock = threading.RLock()

    # -- values -------------------------------------------------------------------------

    def set(self, name: str, value: Any) -> None:
        """Keep a value for the rest of the transaction and its children."""
        self._values[name] = value

    def get(self, name: str, default: Any = _NOT_SET) -> Any:
        """A value set here or in a parent transaction; ValueError if none and no default."""
        txn: Transaction | None = self
        while txn is not None:
            if name in txn._values:
                return txn._values[name]
            txn = txn._parent
        if default is not _NOT_SET:
            return default
        raise ValueError(f"Could not retrieve value for unknown key: {name}")

    # -- state --------------------------------------------------------------------------

    def is_committed(self) -> bool:
        return self.state is TransactionState.COMMITTED

    def is_rolled_back(self) -> bool:
        return self.state is TransactionState.ROLLED_BACK

    def is_staged(self) -> bool:
        return self.state is TransactionState.STAGED

    def is_pending(self) -> bool:
        return self.state is TransactionState.PENDING

    def is_active(self) -> bool:
        return self.state is TransactionState.ACTIVE

    def get_parent(self) -> Transaction | None:
        return self._parent

    def add_child(self, child: Transaction) -> None:
        with self._lock:
            self.children.append(child)

    # -- the block ----------------------------------------------------------------------

    def __enter__(self) -> Transaction:
        if self._token is not None:
            raise RuntimeError("this transaction is already open")
        self._parent = _current.get()
        parent = self._parent
        if self.commit_mode is None:
            self.commit_mode = parent.commit_mode if parent else CommitMode.LAZY
        if self.isolation_level is None:
            self.isolation_level = parent.isolation_level if parent else _READ_COMMITTED
        self.state = TransactionState.ACTIVE
        self.begin()
        self._token = _current.set(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is not None:
            self.rollback()
            self._close()
            return
        if self.commit_mode is CommitMode.EAGER:
            self.commit()
        if self._parent is not None:
            self._close()
            return
        if self.commit_mode is CommitMode.OFF:
            self.rollback()
        elif self.commit_mode is CommitMode.LAZY:
            self.commit()
        self._close()

    def _close(self) -> None:
        """Hand this transaction to its parent (which rolls back with it) and leave it."""
        parent = self._parent
        if parent is not None:
            parent.add_child(self)
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        if parent is not None and self.is_rolled_back():
            parent.rollback()

    def begin(self) -> None:
        if self.key is None:
            return
        if self.isolation_level is IsolationLevel.SERIALIZABLE:
            self._file_lock = _key_lock(self.key)
            self._file_lock.acquire()
        if not self.overwrite and current_store().transaction_committed(self.key):
            self.state = TransactionState.COMMITTED

    def stage(
        self,
        publish: Callable[[], None] | None = None,
        on_commit_hooks: Iterable[Callable[[Transaction], Any]] = (),
        on_rollback_hooks: Iterable[Callable[[Transaction], Any]] = (),
    ) -> None:
        """Hold what committing writes (`publish`) and the hooks that commit or rollback
        runs."""
        with self._lock:
            if self.state is TransactionState.COMMITTED:
                return
            self._publish = publish
            self.on_commit_hooks.extend(on_commit_hooks)
            self.on_rollback_hooks.extend(on_rollback_hooks)
            self.state = TransactionState.STAGED

    def commit(self) -> bool:
        """Commit the children, write what was staged, run the commit hooks and record the
        key; False if it had already ended (or rolled back because committing failed)."""
        with self._lock:
            if self.state in _ENDED:
                self._release()
                return False
            try:
                for child in list(self.children):
                    child.commit()
                if self._publish is not None:
                    self._publish()
                for hook in self.on_commit_hooks:
                    self._run_hook(hook, "commit")
                if self.key is not None and self.write_on_commit:
                    current_store().record_transaction(self.key, _flow_run_id())
                self.state = TransactionState.COMMITTED
            except Exception:
                self.logger.exception("An error was encountered while committing %r", self)
                self.rollback()
                return False
            self._release()
            return True

    def rollback(self) -> bool:
        """Run the rollback hooks (newest first) and roll back the children; False if it
        had already ended."""
        with self._lock:
            if self.state in _ENDED:
                return False
            try:
                for hook in reversed(self.on_rollback_hooks):
                    self._run_hook(hook, "rollback")
                self.state = TransactionState.ROLLED_BACK
                for child in reversed(self.children):
                    child.rollback()
            except Exception:
                self.logger.exception("An error was encountered while rolling back %r", self)
                return False
            finally:
                self._release()
            return True

    def _run_hook(self, hook: Callable[[Transaction], Any], kind: str) -> None:
        name = getattr(hook, "__name__", repr(hook))
        self.logger.info("Running %s hook %r", kind, name)
        hook(self)
        self.logger.info("%s hook %r finished running successfully", kind.capitalize(), name)

    def _release(self) -> None:
        if self._file_lock is not None:
            self._file_lock.release()
            self._file_lock = None

    def __repr__(self) -> str:
        return f"Transaction(key={self.key!r}, state={self.state.name})"


_READ_COMMITTED = IsolationLevel.READ_COMMITTED
_ENDED = (TransactionState.COMMITTED, TransactionState.ROLLED_BACK)


def get_transaction() -> Transaction | None:
    """The innermost open transaction, or None."""
    return _current.get()


@contextmanager
def transaction(
    key: str | None = None,
    store: Any = None,
    commit_mode: CommitMode | None = None,
    isolation_level: IsolationLevel | None = None,
    overwrite: bool = False,
    write_on_commit: bool = True,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
) -> Iterator[Transaction]:
    """Open a transaction for the block (see the module's documentation).

    `store` is accepted for Prefect's signature and not used: records and locks live in
    the project's `.orch/`.
    """
    if store is not None:
        log.warning("transaction(store=...) is ignored: records and locks live in .orch/")
    with Transaction(
        key,
        commit_mode=commit_mode,
        isolation_level=isolation_level,
        overwrite=overwrite,
        write_on_commit=write_on_commit,
        logger=logger,
    ) as txn:
        yield txn


# -- task runs ----------------------------------------------------------------------------


def task_completed(
    key: str | None,
    publish: Callable[[], None] | None,
    on_commit_hooks: list[Callable[[Transaction], Any]],
    on_rollback_hooks: list[Callable[[Transaction], Any]],
) -> None:
    """Stage a completed task run in the open transaction, or commit it at once outside
    one (or under EAGER). `publish` writes its cache entry; None when that is written
    already."""
    parent = _current.get()
    txn = Transaction(key, parent=parent, write_on_commit=False)
    txn.commit_mode = parent.commit_mode if parent else CommitMode.LAZY
    txn.stage(publish, on_commit_hooks, on_rollback_hooks)
    if parent is None or txn.commit_mode is CommitMode.EAGER:
        txn.commit()
    if parent is not None:
        parent.add_child(txn)


def task_failed() -> None:
    """A task run inside an open transaction ended without completing: roll it back."""
    parent = _current.get()
    if parent is not None:
        parent.rollback()


def defers_commit() -> bool:
    """Whether a task run completing now is committed later (staged in a LAZY or OFF
    transaction) rather than at once."""
    parent = _current.get()
    return parent is not None and parent.commit_mode is not CommitMode.EAGER


# -- where records and locks live ---------------------------------------------------------


def _flow_run_id() -> str | None:
    ctx = flow_run_var.get()
    return ctx.run_id if ctx is not None else None


def _key_lock(key: str) -> BaseFileLock:
    from filelock import FileLock

    folder = current_store().home / "locks"
    folder.mkdir(mode=0o700, exist_ok=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return FileLock(str(folder / f"transaction-{digest}.lock"), mode=0o600)
