"""The agent core: decides what to fetch, what to write, when to ask the bootloader for the image and
when to confirm it; the network is a :class:`~mcuota.agent.transport.Transport`, flash a
:class:`~mcuota.agent.storage.Storage`, time a :class:`Clock`, the running firmware a
:data:`SelfTest`. Nothing here opens a socket or sleeps for real.

Two calls make the life cycle::

    agent.on_boot(boot_result)     after every reset: self-test, then confirm; or detect a revert
    agent.check_for_update()       job flow (or direct flow): download, verify, request, report

PowerLoss (a ``BaseException``) is never caught: a cut ends the call as it ends the device, and the
next ``on_boot`` / ``check_for_update`` carries on from what the journal in flash says.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, TypeVar

from mcuota.agent.config import AgentConfig
from mcuota.agent.errors import RETRIABLE, AgentCode, AgentError
from mcuota.agent.states import Answer, Callback, Event, Reason, State
from mcuota.agent.storage import Kind, Session, Storage
from mcuota.agent.transport import ReportKind, Transport
from mcuota.boot.strategy import BootAction, BootResult
from mcuota.errors import McuotaError, UsageError
from mcuota.image.version import ImageVersion
from mcuota.transport.seed002 import Message, Seed002Error, check_job, parse_job_document

T = TypeVar("T")


class Clock(Protocol):
    def sleep(self, seconds: float) -> None: ...


SelfTest = Callable[[BootResult, ImageVersion], bool]
"""Whether the firmware the bootloader started really runs as ``version`` (e.g. its banner)."""


class Status(StrEnum):
    NO_UPDATE = "no-update"
    STAGED = "staged"            # downloaded, verified, requested: a reset installs it
    FAILED = "failed"
    UPDATED = "updated"          # after the reset: self-test passed, confirmed
    REVERTED = "reverted"        # after the reset: self-test failed, the bootloader went back
    NOT_INSTALLED = "not-installed"
    TRIAL_FAILED = "trial-failed"  # self-test failed; not confirmed, a reset reverts it
    RUNNING = "running"          # nothing pending; the running image passed its self-test


@dataclass(frozen=True)
class Outcome:
    status: Status
    code: AgentCode | None = None
    reason: str = ""
    version: ImageVersion | None = None
    reset_requested: bool = False
    resumed_from: int = 0
    bytes_fetched: int = 0


@dataclass(frozen=True)
class Offer:
    file: str
    version: ImageVersion | None
    sha256: str = ""


REPORT_CODES = (ReportKind.STAGED, ReportKind.UPDATED, ReportKind.FAILED, ReportKind.REVERTED)
"""Report kinds by the number a journal record keeps."""

RESTARTABLE = RETRIABLE | {AgentCode.VERIFY, AgentCode.SIZE_CHANGED}
"""Failures after which a new download attempt (``max_download_tries``) may succeed: a flaky link, or
bytes corrupted in transit that only the final hash caught. The others are the offer's own fault."""


class Agent:
    def __init__(self, config: AgentConfig, transport: Transport, storage: Storage, *,
                 clock: Clock, self_test: SelfTest, callback: Callback | None = None) -> None:
        self.config = config
        self.transport = transport
        self.storage = storage
        self.clock = clock
        self.self_test = self_test
        self.callback = callback
        self.rng = config.rng()
        self.state = State.NOT_INITIALIZED
        self.history: list[Event] = []

    # -- callbacks
    def _enter(self, state: State, percent: int = 0) -> None:
        self.state = state
        self._notify(Event(Reason.STATE_CHANGE, state, percent))

    def _notify(self, event: Event) -> None:
        self.history.append(event)
        answer = self.callback(event) if self.callback is not None else None
        if answer is Answer.STOP and event.reason is Reason.STATE_CHANGE:
            raise AgentError(AgentCode.APP_RETURNED_STOP, f"the application stopped the update in "
                             f"{event.state.value}")

    # -- retries
    def _retrying(self, what: Callable[[], T], *, connect: bool = False) -> T:
        """``what`` until it works: ``retries`` attempts; reaching the server at all (the job request
        failing with CONNECTION_LOST) gets ``connect_retries`` instead, as the seed agent counts them."""
        attempt = 0
        while True:
            try:
                return what()
            except AgentError as exc:
                attempt += 1
                limit = (self.config.connect_retries if connect and exc.code is AgentCode.CONNECTION_LOST
                         else self.config.retries)
                if not exc.retriable or attempt >= limit:
                    raise
                self.clock.sleep(self.config.retry_delay(attempt, self.rng))

    # -- scheduling
    def next_check_in(self, outcome: Outcome | None, failures_in_a_row: int = 0) -> float:
        """Seconds until the next check, as the seed agent schedules it: ``initial_check`` after a start
        (``outcome`` None), ``next_check`` after a check that ended well or found nothing, and after a
        failure the retry interval doubling per failure in a row (capped at ``check_timeout``), spread
        by the jitter so a fleet that lost its server does not come back in lock-step."""
        config = self.config
        if outcome is None:
            return config.initial_check
        if outcome.status is Status.FAILED:
            return config.retry_delay(max(1, failures_in_a_row), self.rng)
        return config.next_check

    # -- the update
    def check_for_update(self) -> Outcome:
        self._send_owed_report()
        offer_file = self.config.direct_file
        try:
            self._enter(State.START_UPDATE)
            offer = self._job() if self.config.use_job_flow else Offer(self.config.direct_file, None)
            if offer is None:
                self._enter(State.OTA_COMPLETE)
                return Outcome(Status.NO_UPDATE)
            offer_file = offer.file
            return self._download(offer)
        except AgentError as exc:
            return self._fail(offer_file, exc.code, exc.detail)

    def _job(self) -> Offer | None:
        self._enter(State.JOB_CONNECT)
        self._enter(State.JOB_DOWNLOAD)
        raw = self._retrying(self.transport.get_job_document, connect=True)
        self._enter(State.JOB_DISCONNECT)
        self._enter(State.JOB_PARSE)
        running = self.storage.running_version() or ImageVersion()
        try:
            job = parse_job_document(raw)
            if job.message is Message.NO_UPDATE_AVAILABLE:
                return None
            check_job(job, board=self.config.board, running_version=running)
        except Seed002Error as exc:
            raise AgentError(AgentCode(exc.code.value), exc.detail) from None
        if not job.file:
            raise AgentError(AgentCode.MALFORMED_JOB_DOC, 'job document has no "File"')
        return Offer(job.file, job.version, job.sha256)

    def _download(self, offer: Offer) -> Outcome:
        """Up to ``max_download_tries`` downloads; each resumes what the journal says is intact."""
        tries = 0
        while True:
            tries += 1
            try:
                return self._download_once(offer)
            except AgentError as exc:
                if exc.code not in RESTARTABLE or tries >= self.config.max_download_tries:
                    raise
                self._notify(Event(Reason.FAILURE, self.state, code=exc.code,
                                   detail=f"download try {tries} of {self.config.max_download_tries}: "
                                   f"{exc.detail}; trying again"))
                self.clock.sleep(self.config.retry_delay(tries, self.rng))

    def _download_once(self, offer: Offer) -> Outcome:
        step = self.config.step
        journal = self.storage.read_journal()
        if (journal.requested is not None and not journal.done and offer.version is not None
                and journal.requested[0].triple == offer.version.triple and self.storage.request_stands()):
            # already downloaded, verified and requested: only a reset is missing
            self._enter(State.OTA_COMPLETE, 100)
            return Outcome(Status.STAGED, version=offer.version,
                           reset_requested=self.config.reset_after_complete, resumed_from=journal.total)
        self._enter(State.DATA_CONNECT)
        first = self._retrying(lambda: self.transport.fetch(offer.file, 0, step))
        total = first.total
        self.storage.check_format(first.data)
        version = offer.version
        if version is None:     # direct flow: the image says what it is
            version = self.storage.version_in(first.data)
            if version is None:
                raise AgentError(AgentCode.MALFORMED_JOB_DOC, "the direct flow needs an image that carries "
                                 "its version; this format does not (use the job flow)")
            running = self.storage.running_version() or ImageVersion()
            if not version.newer_than(running):
                raise AgentError(AgentCode.INVALID_VERSION, f"image version {version} is not newer than "
                                 f"running {running}")
        self._enter(State.STORAGE_OPEN)
        session = Session(offer.file, version, total)
        offset = resumed = self.storage.open(session, step)
        fetched = len(first.data)
        self._enter(State.DATA_DOWNLOAD, offset * 100 // total)
        pending = first.data if offset == 0 else None
        while offset < total:
            if pending is None:
                got = self._retrying(functools.partial(self.transport.fetch, offer.file, offset, step))
                if got.total != total:
                    raise AgentError(AgentCode.SIZE_CHANGED, f"file is now {got.total} bytes, was {total}")
                pending = got.data
                fetched += len(pending)
            self.storage.write_step(offset, pending)
            offset += len(pending)
            pending = None
            self._enter(State.STORAGE_WRITE, offset * 100 // total)
        self._enter(State.DATA_DISCONNECT, 100)
        self._enter(State.STORAGE_CLOSE, 100)
        self._enter(State.VERIFY, 100)
        try:
            self.storage.verify(total, version, offer.sha256)
        except AgentError:
            self.storage.abandon()
            raise
        previous = self.storage.running_version() or ImageVersion()
        self.storage.request(version, previous)
        self._report(offer.file, ReportKind.STAGED, f"downloaded and verified {version}; update requested")
        self._notify(Event(Reason.SUCCESS, State.OTA_COMPLETE, 100))
        self._enter(State.OTA_COMPLETE, 100)
        return Outcome(Status.STAGED, version=version, reset_requested=self.config.reset_after_complete,
                       resumed_from=resumed, bytes_fetched=fetched)

    def _report(self, file: str, kind: ReportKind, reason: str) -> None:
        self._enter(State.RESULT_CONNECT)
        self._enter(State.RESULT_SEND)
        self._retrying(lambda: self.transport.report(file, kind, reason))
        self._enter(State.RESULT_RESPONSE)
        self._enter(State.RESULT_DISCONNECT)

    def _fail(self, file: str, code: AgentCode, detail: str) -> Outcome:
        self.history.append(Event(Reason.FAILURE, self.state, code=code, detail=detail))
        if self.callback is not None:
            self.callback(self.history[-1])
        self.callback, saved = None, self.callback   # a STOP must not stop the failure report
        try:
            self._report(file, ReportKind.FAILED, f"{code.value}: {detail}")
        except AgentError:
            pass                                         # nobody to tell; the outcome still says why
        finally:
            self.callback = saved
        self.state = State.OTA_COMPLETE
        return Outcome(Status.FAILED, code=code, reason=f"{code.value}: {detail}")

    # -- after a reset
    def on_boot(self, boot: BootResult, *, file: str = "") -> Outcome:
        """Run after every reset once the bootloader jumped. Confirms only after the self-test passed;
        reports what happened to a requested update (updated, reverted, not installed)."""
        if boot.action is not BootAction.JUMP:
            raise UsageError(f"the bootloader did not start an application: {boot.reason}")
        journal = self.storage.read_journal()
        running = self.storage.running_version() or ImageVersion()
        file = file or journal.file or self.config.direct_file
        pending = journal.requested if not journal.done else None
        if pending is None:
            if self.self_test(boot, running):
                self.storage.confirm()
                return Outcome(Status.RUNNING, version=running)
            return Outcome(Status.TRIAL_FAILED, version=running, reason="self-test failed",
                           reset_requested=True)
        target, _previous = pending
        if running.triple == target.triple:
            if not journal.trial:
                self.storage.mark(Kind.TRIAL)
            if not self.self_test(boot, target):
                if not journal.trial_failed:
                    self.storage.mark(Kind.TRIAL_FAILED)
                return Outcome(Status.TRIAL_FAILED, version=target, reason="self-test failed; not "
                               "confirmed, the next reset reverts", reset_requested=True)
            self.storage.confirm()
            self.storage.mark(Kind.DONE)
            self._safe_report(file, ReportKind.UPDATED, f"updated to {target}")
            return Outcome(Status.UPDATED, version=target)
        # a trial the agent never saw (power lost before on_boot) still leaves the image in the
        # secondary slot after the revert; a refused one is scrambled
        reverted = journal.trial or self.storage.staged_image_back(journal, target)
        status = Status.REVERTED if reverted else Status.NOT_INSTALLED
        reason = (f"reverted from {target} to {running}" if reverted
                  else f"the bootloader did not install {target}; still {running}")
        if self.self_test(boot, running):
            self.storage.confirm()
        self.storage.mark(Kind.DONE)
        self._safe_report(file, ReportKind.REVERTED if reverted else ReportKind.FAILED, reason)
        return Outcome(status, version=running, reason=reason)

    def _safe_report(self, file: str, kind: ReportKind, reason: str) -> None:
        """The result after a reset; when the server cannot be told now, the journal remembers that it
        is owed, and the next check sends it (a lost "updated" would leave a rollout waiting forever)."""
        try:
            self._report(file, kind, reason)
        except McuotaError:
            self.storage.mark(Kind.UNSENT, REPORT_CODES.index(kind))

    def _send_owed_report(self) -> None:
        journal = self.storage.read_journal()
        if journal.unsent is None or not 0 <= journal.unsent < len(REPORT_CODES) or not journal.file:
            return
        kind = REPORT_CODES[journal.unsent]
        with contextlib.suppress(McuotaError):
            self._report(journal.file, kind, f"{kind.value} (reported after a reset; the first report "
                         "did not get through)")
            self.storage.mark(Kind.SENT)
