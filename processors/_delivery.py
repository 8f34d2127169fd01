"""Sinks: a bounded queue of ended spans per destination, and the worker thread that ships them.

The application's thread only appends to a deque (``offer``): it never waits for a lock held
during I/O, never encodes, never touches the network or the disk. The worker wakes when a batch
is full or the schedule delay passes, masks (sensitive values, SQL literals), and ships. A full
queue drops the span and counts it (``queue_full``); the governor lowers the load well before
that happens.

The OTLP sink encodes each batch once and sends the bytes through the official exporter's
channel, several requests at once over gRPC (each answer wakes the worker). When the receiver is
down or slow its circuit breaker opens and batches go to the on-disk spool instead, in order;
the worker probes the receiver with the oldest spooled batch and, once it answers, delivers the
spool oldest first before anything newer. At exit the queue is shipped within the flush deadline
and whatever is left, requests still unanswered included, is spooled for the next start.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from execscope.processors._breaker import CircuitBreaker
from execscope.processors._compact import CompactSpan, to_readable
from execscope.processors._otlp_encoding import encode_compact_request
from execscope.processors._redact_span import redact_span
from execscope.processors._redaction import SpanMasking
from execscope.processors._spool import Spool
from execscope.processors._stats import DropReason, PipelineStats
from execscope.processors._transport import Answered, Pending, Sent, Transport

_logger = logging.getLogger(__name__)


class Sink(ABC):
    """One destination of the pipeline with its own queue and worker thread."""

    def __init__(
        self,
        name: str,
        stats: PipelineStats,
        masking: SpanMasking,
        *,
        max_queue: int,
        batch_size: int,
        schedule_delay_s: float,
    ) -> None:
        self.name = name
        self._stats = stats
        self._masking = masking
        self.max_queue = max_queue
        self._batch_size = batch_size
        self._schedule_delay_s = schedule_delay_s
        #: CPU seconds this sink's worker thread has used (the governor's measure of export cost).
        self.worker_cpu_s = 0.0
        self._init_state()
        reference = weakref.ref(self)

        def _after_fork_in_child() -> None:
            sink = reference()
            if sink is not None:
                sink._after_fork_in_child()

        os.register_at_fork(after_in_child=_after_fork_in_child)

    def _init_state(self) -> None:
        self._queue: deque[CompactSpan] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._done = threading.Condition(threading.Lock())
        self._offered = 0
        self._shipped = 0
        self._stopping = False
        self._worker: threading.Thread | None = None
        self._slowest_export_s = 0.0
        #: When the export call under way began (monotonic), None between calls.
        self._export_began: float | None = None

    # -- the application's side ----------------------------------------------------------------

    def offer(self, span: CompactSpan) -> None:
        """Queue ``span`` for export; never blocks. A full queue drops it, counted."""
        queue = self._queue
        if len(queue) >= self.max_queue:
            self._stats.drop(DropReason.QUEUE_FULL)
            return
        queue.append(span)
        self._offered += 1
        if self._worker is None:
            self._start_worker()
        elif len(queue) >= self._batch_size and not self._wake.is_set():
            self._wake.set()

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def export_cpu_s(self) -> float:
        """CPU seconds spent exporting so far: the worker's, and any threads of the destination's."""
        return self.worker_cpu_s

    # -- flushing and shutdown -----------------------------------------------------------------

    def flush(self, deadline: float) -> bool:
        """Ship everything queued so far; True when done before ``deadline`` (a monotonic time)."""
        target = self._offered
        if self._worker is None and self._queue and not self._stopping:
            # Another thread queued the first span and is about to start the worker: start it
            # here (it starts once), rather than report spans that are merely not shipped yet.
            self._start_worker()
        if self._worker is None or not self._worker.is_alive():
            return self._shipped >= target and not self._queue
        self._wake.set()
        with self._done:
            # Not "while the queue is non-empty": the last batch leaves the queue before it is sent,
            # and (OTLP) is shipped once its request is answered.
            while self._shipped - self._unsettled() < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._done.wait(min(remaining, 0.05))
        return True

    def shutdown(self, deadline: float) -> None:
        """Flush until ``deadline``, stop the worker, then keep or count what is left."""
        self.flush(deadline)
        self._stopping = True
        self._wake.set()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(max(0.0, deadline - time.monotonic()))
        leftover = self._take(len(self._queue))
        if leftover or self._unsettled() or (worker is not None and worker.is_alive()):
            self._at_deadline(leftover)
        self._close()

    # -- the worker's side ---------------------------------------------------------------------

    def take_slowest_export_s(self) -> float:
        """The longest export call (the destination's part only) since the previous call of this
        method, counting one still under way for as long as it has run so far."""
        slowest, self._slowest_export_s = self._slowest_export_s, 0.0
        began = self._export_began
        if began is not None:
            slowest = max(slowest, time.monotonic() - began)
        return slowest

    def _export_starts(self) -> None:
        self._export_began = time.monotonic()

    def _export_ended(self) -> None:
        began, self._export_began = self._export_began, None
        if began is not None:
            self._slowest_export_s = max(self._slowest_export_s, time.monotonic() - began)

    def _start_worker(self) -> None:
        with self._lock:
            if self._worker is not None:
                return
            self._worker = threading.Thread(
                target=self._run, name=f"execscope-export-{self.name}", daemon=True
            )
            self._worker.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._wait_s())
            self._wake.clear()
            try:
                self._work()
            except Exception:  # fail open: count it, keep the worker alive
                self._stats.add("internal_errors")
                _logger.debug("execscope: export worker error in %s", self.name, exc_info=True)
            with self._done:
                self._done.notify_all()
            if self._stopping:
                return

    def _work(self) -> None:
        # CPU is added up batch by batch: under steady load this loop runs for seconds, and the
        # governor must see the export cost while it is being paid, not once the queue is empty.
        while batch := self._take(self._batch_size):
            cpu = time.thread_time()
            try:
                self._ship([redact_span(span, self._masking) for span in batch])
            finally:
                # Counted however shipping ended (an internal error is counted by _run), so that
                # flush() waits for exactly the batches still to come.
                self._shipped += len(batch)
                self.worker_cpu_s += time.thread_time() - cpu
            if self._stopping:
                break
        cpu = time.thread_time()
        self._idle()
        self.worker_cpu_s += time.thread_time() - cpu

    def _take(self, count: int) -> list[CompactSpan]:
        queue = self._queue
        batch: list[CompactSpan] = []
        try:
            for _ in range(min(count, len(queue))):
                batch.append(queue.popleft())
        except IndexError:  # taken concurrently at shutdown
            pass
        return batch

    def _wait_s(self) -> float:
        return self._schedule_delay_s

    def _unsettled(self) -> int:
        """Spans taken from the queue whose export is not yet answered."""
        return 0

    @abstractmethod
    def _ship(self, batch: list[CompactSpan]) -> None: ...

    def _idle(self) -> None:  # noqa: B027  (optional hook: most sinks have nothing to do)
        """Called after each round of shipping (the OTLP sink drains its spool here)."""

    def _at_deadline(self, leftover: list[CompactSpan]) -> None:
        self._stats.drop(DropReason.SHUTDOWN, len(leftover))

    def _close(self) -> None:  # noqa: B027  (optional hook)
        """Release the destination."""

    def _after_fork_in_child(self) -> None:
        # The parent's queued spans are the parent's to export; the child starts empty, with
        # a lock and event of its own (the parent's may have been held at fork), and starts its
        # worker when it ends its first span.
        self._init_state()
        self.worker_cpu_s = 0.0


class ExporterSink(Sink):
    """Ships through any ``SpanExporter`` (the embedded store, console, third-party exporters)."""

    def __init__(
        self, exporter: SpanExporter, stats: PipelineStats, masking: SpanMasking, **queue: float
    ) -> None:
        self.exporter = exporter
        super().__init__(type(exporter).__name__, stats, masking, **queue)  # type: ignore[arg-type]

    def _ship(self, batch: list[CompactSpan]) -> None:
        readable = [to_readable(span) for span in batch]
        self._export_starts()
        try:
            result = self.exporter.export(readable)
        except Exception as error:  # fail open
            _logger.warning("execscope: %s failed to export %d spans: %s", self.name, len(batch), error)
            result = SpanExportResult.FAILURE
        self._export_ended()
        if result is SpanExportResult.SUCCESS:
            self._stats.add("exported", len(batch))
        else:
            self._stats.drop(DropReason.EXPORT_FAILURE, len(batch))

    def _close(self) -> None:
        try:
            if not self._shipped:
                # An empty export still opens the destination: a run that recorded nothing
                # leaves an empty store, which readers report as "no traces", not "no store".
                self.exporter.export([])
            self.exporter.shutdown()
        except Exception as error:  # fail open
            _logger.debug("execscope: shutting down %s failed: %s", self.name, error)


class _Request:
    """One encoded batch on its way to the receiver."""

    __slots__ = ("abandoned", "began", "count", "from_spool", "payload", "pending")

    def __init__(self, payload: bytes, count: int, from_spool: bool) -> None:
        self.payload = payload
        self.count = count
        #: Whether it is the spool's oldest record (which stays in the spool until it is answered).
        self.from_spool = from_spool
        self.began = time.monotonic()
        self.pending: Pending = Answered(Sent.RETRY)
        #: Accounted for (spooled or counted) at the shutdown deadline while still on its way.
        self.abandoned = False


class OtlpSink(Sink):
    """Encodes once, sends the bytes, and spools them while the receiver is unreachable.

    Up to the transport's ``concurrency`` requests are on their way at once (gRPC: 4), answered
    in the order they were sent: the worker encodes the next batch while the receiver works on
    the previous ones, so a receiver's latency (a collector on a busy machine takes tens of
    milliseconds per request) does not cap what one worker thread delivers. A batch the
    receiver refuses for now is spooled when its answer is read, behind any older batch that
    was refused too; once the breaker opens, what is still on its way is answered before
    anything newer is spooled, so the spool keeps the order in which batches were made.
    """

    def __init__(
        self,
        transport: Transport,
        spool: Spool | None,
        stats: PipelineStats,
        masking: SpanMasking,
        *,
        timeout_s: float,
        **queue: float,
    ) -> None:
        self.transport = transport
        self.spool = spool
        self._timeout_s = timeout_s
        self.breaker = CircuitBreaker(transport.name)
        #: Requests sent and not yet answered, oldest first.
        self._in_flight: deque[_Request] = deque()
        super().__init__(transport.name, stats, masking, **queue)  # type: ignore[arg-type]

    def _ship(self, batch: Sequence[CompactSpan]) -> None:
        # Among the requests from the moment it leaves the queue, before it waits for room:
        # the shutdown deadline accounts for it however far it got.
        request = _Request(encode_compact_request(batch), len(batch), from_spool=False)
        self._settle(wait=False)  # the answers already in
        self._in_flight.append(request)
        if not self._spooling():
            self._settle(keep=self.transport.concurrency)  # room for this one, the newest
        if self._spooling():  # asked again: an answer taken while waiting may have opened the breaker
            self._in_flight.remove(request)
            self._settle()  # their answers come first: a refused one is spooled before this one
            if not request.abandoned:
                self._to_spool(request.payload, request.count)  # behind older spooled batches
            self._drain()
            return
        self._send(request)

    @property
    def export_cpu_s(self) -> float:
        return self.worker_cpu_s + self.transport.cpu_s

    def _spooling(self) -> bool:
        """Whether a new batch goes to the spool: the breaker is open, or older batches wait there."""
        spool = self.spool
        return spool is not None and (self.breaker.open or bool(spool.pending_spans))

    def _send(self, request: _Request) -> None:
        """Start sending ``request``, already the newest of the requests on their way."""
        if request.abandoned:
            self._in_flight.remove(request)  # the shutdown deadline took it
            return
        request.began = time.monotonic()
        self._export_began = self._in_flight[0].began
        try:
            request.pending = self.transport.start(request.payload, self._timeout_s)
            # The worker takes the answer as soon as it is in, not when it next has spans.
            request.pending.when_done(self._wake.set)
        except Exception as error:  # fail open: it is answered as "try again later"
            _logger.debug("execscope: %s could not send a batch: %s", self.name, error)

    def _answer_oldest(self) -> tuple[_Request, Sent]:
        """Waits for the oldest request's answer and takes it off the requests on their way."""
        request = self._in_flight[0]
        try:
            result = request.pending.result()
        except Exception as error:  # fail open
            _logger.debug("execscope: %s: reading an answer failed: %s", self.name, error)
            result = Sent.RETRY
        self._in_flight.popleft()
        self._slowest_export_s = max(self._slowest_export_s, time.monotonic() - request.began)
        self._export_began = self._in_flight[0].began if self._in_flight else None
        return request, result

    def _settle(self, keep: int = 0, *, wait: bool = True) -> None:
        """Take the answers of the oldest requests until at most ``keep`` are on their way;
        without ``wait``, only those already answered."""
        in_flight = self._in_flight
        while len(in_flight) > keep and (wait or in_flight[0].pending.done()):
            request, result = self._answer_oldest()
            if request.abandoned:
                continue
            if result is Sent.DELIVERED:
                self.breaker.succeeded()
                self._stats.add("exported", request.count)
            elif result is Sent.REJECTED:
                self._stats.drop(DropReason.EXPORT_FAILURE, request.count)
            else:
                self.breaker.failed()
                self._to_spool(request.payload, request.count)

    def _unsettled(self) -> int:
        return sum([request.count for request in list(self._in_flight) if not request.from_spool])

    def _to_spool(self, payload: bytes, count: int) -> None:
        if self.spool is None:
            self._stats.drop(DropReason.EXPORT_FAILURE, count)
            return
        lost = self.spool.append(payload, count)
        self._stats.add("spooled", count)
        if lost:
            self._stats.drop(DropReason.SPOOL_FULL, lost)

    def _drain(self) -> None:
        spool = self.spool
        if spool is None:
            return
        while not self._stopping and self.breaker.allows():
            record = spool.peek()
            if record is None:
                return
            payload, count = record
            self._settle()  # the spool is delivered oldest first, after everything already sent
            request = _Request(payload, count, from_spool=True)
            self._in_flight.append(request)
            self._send(request)
            _, result = self._answer_oldest()
            if result is Sent.RETRY:
                self.breaker.failed()
                return
            spool.pop()
            self.breaker.succeeded()
            if result is Sent.DELIVERED:
                self._stats.add("exported", count)
                self._stats.add("unspooled", count)
            else:
                self._stats.drop(DropReason.EXPORT_FAILURE, count)

    def _idle(self) -> None:
        # The answers already in; each later one wakes the worker (see _send), which does not
        # wait here for them: spans queued meanwhile are encoded and sent in the meantime.
        self._settle(wait=False)
        # Also when nothing of its own is pending: peeking adopts the spool areas of processes
        # that died since (rate-limited inside the spool), so their spans are delivered too.
        if self.spool is not None:
            self._drain()

    def _wait_s(self) -> float:
        if self.spool is not None and self.spool.pending_spans:
            return min(self._schedule_delay_s, max(0.01, self.breaker.seconds_until_probe()))
        return self._schedule_delay_s

    def _at_deadline(self, leftover: list[CompactSpan]) -> None:
        for request in list(self._in_flight):
            if request.from_spool:
                continue  # a spooled batch stays in the spool anyway
            request.abandoned = True
            if self.spool is None:
                self._stats.drop(DropReason.SHUTDOWN, request.count)
            else:
                self._to_spool(request.payload, request.count)  # it may yet arrive: at least once
        if self.spool is None:
            super()._at_deadline(leftover)
            return
        if leftover:
            masked = [redact_span(span, self._masking) for span in leftover]
            self._to_spool(encode_compact_request(masked), len(masked))

    def _close(self) -> None:
        self.transport.close()
        if self.spool is not None:
            self.spool.close()

    def _after_fork_in_child(self) -> None:
        super()._after_fork_in_child()
        self._in_flight = deque()  # the parent's requests, answered (or not) in the parent
        self.breaker = CircuitBreaker(self.transport.name)
        if self.spool is not None:
            self.spool.after_fork_in_child()
