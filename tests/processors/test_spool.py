"""The on-disk spool: FIFO, persistence, crash safety, size limit, several processes, fail-open."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from execscope.processors import _spool
from execscope.processors._spool import Spool

BIG = 1 << 30


def payload(i: int, size: int = 100) -> bytes:
    return f"record-{i:06d}:".encode().ljust(size, b"x")


def drain(spool: Spool) -> list[tuple[bytes, int]]:
    delivered = []
    while (record := spool.peek()) is not None:
        delivered.append(record)
        spool.pop()
    return delivered


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*/*.seg"))


def areas(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def test_records_come_out_in_order_across_segment_rollover_and_drained_segments_are_deleted(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path, BIG, segment_bytes=4096)
    for i in range(50):
        assert spool.append(payload(i, 1000), i + 1) == 0
    assert len(segments(tmp_path)) > 5
    assert len(spool) == 50
    assert spool.pending_spans == sum(range(1, 51))
    assert spool.size_bytes == 50 * (1000 + 20)

    assert drain(spool) == [(payload(i, 1000), i + 1) for i in range(50)]
    assert segments(tmp_path) == []
    assert (len(spool), spool.pending_spans, spool.size_bytes) == (0, 0, 0)
    spool.close()
    assert areas(tmp_path) == []  # a drained area is removed at close


def test_default_segments_roll_over_at_4_mib(tmp_path: Path) -> None:
    spool = Spool(tmp_path, BIG)
    for i in range(100):
        spool.append(payload(i, 64 * 1024), 1)
    assert len(segments(tmp_path)) == 2
    assert [p for p, _ in drain(spool)] == [payload(i, 64 * 1024) for i in range(100)]


def test_peek_without_pop_returns_the_same_record(tmp_path: Path) -> None:
    spool = Spool(tmp_path, BIG)
    assert spool.peek() is None
    spool.pop()  # nothing peeked: nothing happens
    spool.append(b"a", 1)
    spool.append(b"b", 2)
    assert spool.peek() == (b"a", 1)
    assert spool.peek() == (b"a", 1)
    spool.pop()
    spool.pop()  # only the record last peeked is delivered, once
    assert drain(spool) == [(b"b", 2)]


def test_undelivered_records_survive_close_and_delivered_ones_are_not_delivered_again(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path, BIG, segment_bytes=1024)
    for i in range(20):
        spool.append(payload(i, 200), 1)
    for _ in range(7):  # crosses a segment boundary
        spool.peek()
        spool.pop()
    assert spool.peek() == (payload(7, 200), 1)  # peeked but not popped: delivered again (at-least-once)
    spool.close()

    reopened = Spool(tmp_path, BIG)
    assert len(reopened) == 13
    assert reopened.pending_spans == 13
    reopened.peek()
    reopened.pop()
    reopened.close()  # the cursor is kept in the adopted area too

    third = Spool(tmp_path, BIG)
    assert [p for p, _ in drain(third)] == [payload(i, 200) for i in range(8, 20)]
    third.close()
    assert areas(tmp_path) == []


def test_areas_of_earlier_runs_are_delivered_oldest_first_before_new_records(tmp_path: Path) -> None:
    first = Spool(tmp_path, BIG)
    first.append(b"run1", 1)
    first.close()
    second = Spool(tmp_path, BIG)  # adopts run 1 but does not deliver it
    second.append(b"run2", 1)
    second.close()

    third = Spool(tmp_path, BIG)
    third.append(b"run3", 1)
    assert [p for p, _ in drain(third)] == [b"run1", b"run2", b"run3"]


def _only_segment(directory: Path) -> Path:
    (segment,) = segments(directory)
    return segment


def test_a_torn_tail_record_is_ignored_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path, BIG)
    for i in range(3):
        spool.append(payload(i), 1)
    spool.close()
    segment = _only_segment(tmp_path)
    os.truncate(segment, segment.stat().st_size - 30)  # the process died while writing record 2

    with caplog.at_level(logging.WARNING, logger=_spool.__name__):
        reopened = Spool(tmp_path, BIG)
    assert [p for p, _ in drain(reopened)] == [payload(0), payload(1)]
    assert len(caplog.records) == 1
    assert "torn or corrupt" in caplog.records[0].getMessage()


def test_a_torn_header_is_ignored(tmp_path: Path) -> None:
    spool = Spool(tmp_path, BIG)
    spool.append(payload(0), 1)
    spool.close()
    with _only_segment(tmp_path).open("ab") as segment:
        segment.write(b"ESP1\x05")  # only the start of a header
    assert [p for p, _ in drain(Spool(tmp_path, BIG))] == [payload(0)]


def test_a_record_with_a_bad_crc_is_skipped_alone_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path, BIG)
    for i in range(3):
        spool.append(payload(i), 10)
    spool.close()
    segment = _only_segment(tmp_path)
    data = bytearray(segment.read_bytes())
    data[120 + 20 + 50] ^= 0xFF  # a byte inside the payload of record 1 (records are 20 + 100 bytes)
    segment.write_bytes(bytes(data))

    with caplog.at_level(logging.WARNING, logger=_spool.__name__):
        reopened = Spool(tmp_path, BIG)
    assert reopened.pending_spans == 20
    assert drain(reopened) == [(payload(0), 10), (payload(2), 10)]
    assert len(caplog.records) == 1


def test_a_damaged_header_ends_its_segment_but_not_the_next_ones(tmp_path: Path) -> None:
    spool = Spool(tmp_path, BIG, segment_bytes=240)  # two records per segment
    for i in range(4):
        spool.append(payload(i), 1)
    spool.close()
    first = segments(tmp_path)[0]
    data = bytearray(first.read_bytes())
    data[120 + 6] ^= 0xFF  # the length of record 1: the framing after it cannot be trusted
    first.write_bytes(bytes(data))
    assert [p for p, _ in drain(Spool(tmp_path, BIG))] == [payload(0), payload(2), payload(3)]


def test_a_damaged_cursor_delivers_everything_again(tmp_path: Path) -> None:
    spool = Spool(tmp_path, BIG)
    for i in range(3):
        spool.append(payload(i), 1)
    spool.peek()
    spool.pop()
    spool.close()
    (cursor,) = tmp_path.glob("*/cursor")
    cursor.write_bytes(b"garbage")
    assert len(Spool(tmp_path, BIG)) == 3  # at-least-once: never lost


def test_eviction_keeps_the_newest_records_and_counts_exactly_the_spans_evicted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 10_000)  # segments of 2500 bytes
    spool.append(payload(0, 480), 1)
    spool.append(payload(1, 480), 2)
    spool.peek()
    spool.pop()  # delivered records are not counted as evicted
    evicted = 0
    for i in range(2, 100):
        evicted += spool.append(payload(i, 480), i + 1)
        assert spool.size_bytes <= 10_000

    delivered = drain(spool)
    first_kept = 100 - len(delivered)
    assert delivered == [(payload(i, 480), i + 1) for i in range(first_kept, 100)]  # the newest, in order
    assert evicted == sum(i + 1 for i in range(1, first_kept))
    assert len(delivered) * 500 > 10_000 * 3 // 4  # evicting whole segments costs at most one segment


def test_eviction_reaches_into_adopted_areas_first(tmp_path: Path) -> None:
    old = Spool(tmp_path, BIG)
    old.append(payload(0, 480), 5)
    old.close()
    spool = Spool(tmp_path, 1500)
    assert spool.size_bytes == 500
    assert spool.append(payload(1, 480), 1) == 0
    assert spool.append(payload(2, 480), 1) == 0
    assert spool.append(payload(3, 480), 1) == 5
    assert [p for p, _ in drain(spool)] == [payload(1, 480), payload(2, 480), payload(3, 480)]
    spool.close()
    assert areas(tmp_path) == []


def test_a_payload_larger_than_the_budget_is_not_stored(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1000)
    spool.append(b"kept", 3)
    assert spool.append(b"x" * 1000, 7) == 7
    assert spool.append(b"x" * 980, 1) == 3  # exactly the budget with its header: "kept" is evicted
    assert spool.append(b"x" * 981, 4) == 4
    assert [s for _, s in drain(spool)] == [1]


WORKER = """
import os, sys
from pathlib import Path
from execscope.processors._spool import Spool

directory, tag, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
spool = Spool(directory, 1 << 30, segment_bytes=16384)
for i in range(count):
    assert spool.append(f"{tag}:{i:06d}:".encode().ljust(300, b"."), 1) == 0
print("ready", flush=True)
sys.stdin.readline()
os._exit(0)  # dies without closing its spool
"""


def _start_worker(directory: Path, tag: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(directory), tag, str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _tags(records: list[tuple[bytes, int]]) -> list[str]:
    return [p[: len("a:000000")].decode() for p, _ in records]


@pytest.mark.slow
def test_processes_keep_their_own_areas_and_the_records_of_dead_ones_are_adopted(tmp_path: Path) -> None:
    count = 2000
    workers = {tag: _start_worker(tmp_path, tag, count) for tag in ("a", "b")}
    for worker in workers.values():  # both wrote concurrently, and both are still alive
        assert worker.stdout is not None
        worker.stdout.readline()
    assert len(areas(tmp_path)) == 2

    observer = Spool(tmp_path, BIG, adopt_interval=0)
    assert observer.peek() is None  # living processes keep their areas

    workers["a"].communicate("exit\n")  # dies without closing
    delivered = drain(observer)
    assert _tags(delivered) == [f"a:{i:06d}" for i in range(count)]

    workers["b"].send_signal(signal.SIGKILL)
    workers["b"].wait()
    delivered = drain(observer)
    assert _tags(delivered) == [f"b:{i:06d}" for i in range(count)]
    assert areas(tmp_path) == []  # drained adopted areas are deleted
    observer.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
def test_a_forked_child_writes_to_an_area_of_its_own(tmp_path: Path) -> None:
    spool = Spool(tmp_path, BIG, adopt_interval=0)
    spool.append(b"parent-before", 1)
    (parent_area,) = areas(tmp_path)

    pid = os.fork()
    if pid == 0:  # the child: leave without running pytest's exit
        code = 1
        try:
            spool.after_fork_in_child()
            assert len(spool) == 0
            spool.append(b"child-0", 1)
            spool.append(b"child-1", 1)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0

    assert len(areas(tmp_path)) == 2
    # The child closed its copy of the parent's lock without releasing it: the parent still holds it.
    fd = os.open(tmp_path / parent_area / "lock", os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)

    spool.append(b"parent-after", 1)
    assert [p for p, _ in drain(spool)] == [b"parent-before", b"parent-after", b"child-0", b"child-1"]
    assert areas(tmp_path) == [parent_area]


def _failing(original: Callable[..., Any], error: int, under: Path) -> Callable[..., Any]:
    def fail(path: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(path, (str, Path)) and str(path).startswith(str(under)):
            raise OSError(error, os.strerror(error), str(path))
        return original(path, *args, **kwargs)

    return fail


def test_a_failing_disk_returns_the_spans_not_stored_and_warns_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(os, "mkdir", _failing(os.mkdir, errno.EACCES, tmp_path))
    monkeypatch.setattr(os, "open", _failing(os.open, errno.EACCES, tmp_path))
    with caplog.at_level(logging.WARNING, logger=_spool.__name__):
        spool = Spool(tmp_path / "spool", BIG)  # nothing is created until the first append
        assert spool.append(b"a", 3) == 3  # which cannot even create the directory
        assert spool.append(b"b", 4) == 4
        assert spool.peek() is None
        spool.pop()
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 1  # once per kind of failure
    assert "append failed" in messages[0]


def test_a_full_disk_during_a_write_loses_only_that_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path, BIG)
    spool.append(b"first", 1)
    writev = os.writev

    def full(fd: int, buffers: list[bytes]) -> int:
        writev(fd, [buffers[0], buffers[1][:2]])  # a partial write, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "writev", full)
    assert spool.append(b"second", 2) == 2
    monkeypatch.undo()
    assert spool.append(b"third", 3) == 0
    assert spool.pending_spans == 4
    assert drain(spool) == [(b"first", 1), (b"third", 3)]


def test_read_and_cursor_failures_do_not_raise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(tmp_path, BIG)
    spool.append(b"a", 1)
    spool.append(b"b", 1)
    with monkeypatch.context() as patch:
        patch.setattr(os, "pread", lambda *args: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
        assert spool.peek() is None
    assert spool.peek() == (b"a", 1)  # still there once the disk reads again
    with monkeypatch.context() as patch:
        patch.setattr(os, "open", _failing(os.open, errno.EROFS, tmp_path))
        spool.pop()  # the cursor could not be saved: delivered, but may be delivered again after a restart
    assert drain(spool) == [(b"b", 1)]


def test_a_closed_spool_stores_nothing(tmp_path: Path) -> None:
    spool = Spool(tmp_path, BIG)
    spool.append(b"a", 1)
    spool.close()
    spool.close()
    assert spool.append(b"b", 2) == 2
    assert spool.peek() is None
    assert bool(spool)  # truthy even when empty: `if spool:` tests for a spool, not for records


def test_threads_can_share_a_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path, BIG, segment_bytes=8192)

    def write(tag: int) -> None:
        for i in range(200):
            spool.append(f"{tag}:{i}".encode(), 1)

    threads = [threading.Thread(target=write, args=(tag,)) for tag in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    delivered = [p.decode().split(":") for p, _ in drain(spool)]
    assert len(delivered) == 800
    for tag in range(4):
        assert [int(i) for t, i in delivered if t == str(tag)] == list(range(200))


def test_a_record_damaged_after_it_was_written_is_skipped_at_delivery(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path, BIG)
    spool.append(payload(0), 1)
    spool.append(payload(1), 2)
    segment = _only_segment(tmp_path)
    data = bytearray(segment.read_bytes())
    data[30] ^= 0xFF  # inside the payload of record 0
    segment.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger=_spool.__name__):
        assert drain(spool) == [(payload(1), 2)]
    assert len(caplog.records) == 1
    assert spool.pending_spans == 0


def test_a_span_count_out_of_range_is_a_caller_error(tmp_path: Path) -> None:
    spool = Spool(tmp_path, BIG)
    with pytest.raises(ValueError):
        spool.append(b"a", -1)
    with pytest.raises(ValueError):
        spool.append(b"a", 1 << 32)
    assert areas(tmp_path) == []  # nothing was touched
