"""The answer thread (issue 6, item 3): green answers are not held behind a flood's red ones, and
every batch is still acked only after its own answers, in commit order."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from core.outbound import ReaderAnswer
from core.taps import refusal
from gateway.answering import LINK_BACKLOG, Answerer, Committed, RefusalCap
from gateway.effects import Effects, Publication, Reply
from gateway.messages import Received

AT = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


def _msg(mid: int) -> Received:
    return Received(f"patrol/v1/liyuan/reader/r{mid}/tap", b"{}", 1, mid, False, AT)


class BusyLink:
    """A link whose broker is slow to acknowledge until the first green answer has gone out."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []
        self.green_sent = threading.Event()

    def backlog(self) -> int:
        return 0 if self.green_sent.is_set() else LINK_BACKLOG + 1

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self.log.append(("publish", payload))
        if b'"ok":true' in payload:
            self.green_sent.set()

    def ack(self, msg: Received) -> None:
        self.log.append(("ack", msg.mid))

    def start(self) -> None: ...
    def stop(self) -> None: ...


def test_refusals_of_bad_input_go_last_and_domain_refusals_stay_urgent() -> None:
    effects = Effects(
        replies=[
            Reply("liyuan", "r1", refusal("bad-1", "bad_json")),
            Reply("liyuan", "r2", ReaderAnswer(id="t-1", ok=False, reason="unknown_tag")),
            Reply("liyuan", "r3", ReaderAnswer(id="t-2", ok=True)),
        ]
    )
    committed = Committed.of([_msg(1)], effects)
    assert [p.topic.split("/")[4] for p in committed.urgent] == ["r2", "r3"]
    assert [p.topic.split("/")[4] for p in committed.refusals] == ["r1"]


def test_a_later_batchs_green_answer_overtakes_an_earlier_batchs_red_ones_but_not_its_acks() -> None:
    """A flood's batch is committed first; its 120 red answers wait while the link is backed up,
    the next batch's green answer goes out at once; then the red ones; acks in commit order, each
    batch's after its own answers."""
    link = BusyLink()
    answerer = Answerer(link, RefusalCap(per_second=1000))  # type: ignore[arg-type]
    flood = Effects(replies=[Reply("liyuan", "r9", refusal(f"bad-{i}", "bad_schema")) for i in range(120)])
    green = Effects(replies=[Reply("liyuan", "r1", ReaderAnswer(id="good", ok=True))])
    answerer.put(Committed.of([_msg(i) for i in range(1, 121)], flood))
    answerer.put(Committed.of([_msg(121)], green))
    answerer.start()
    answerer.stop(timeout=10)
    published = [p for what, p in link.log if what == "publish"]
    assert b'"id":"good"' in published[0], "the green answer waited behind red ones"
    assert len(published) == 121
    acks = [(i, mid) for i, (what, mid) in enumerate(link.log) if what == "ack"]
    assert [mid for _, mid in acks] == list(range(1, 122)), "acks in commit order"
    last_red = max(i for i, (what, p) in enumerate(link.log) if what == "publish" and b"bad-" in p)
    assert all(i > last_red for i, mid in acks if mid <= 120), "a flood message acked before its answer"


def test_red_answers_held_for_a_backed_up_link_go_out_after_a_bounded_wait() -> None:
    """A broker that stopped acknowledging must not stall the acks for good: held refusals go out
    after HOLD_S per chunk, and the batch is acked after them."""
    link = BusyLink()
    link.green_sent.clear()
    answerer = Answerer(link, RefusalCap(per_second=1000))  # type: ignore[arg-type]
    answerer.put(Committed.of([_msg(1)], Effects(replies=[Reply("liyuan", "r9", refusal("bad", "bad_json"))])))
    answerer.start()
    answerer.stop(timeout=10)
    assert [what for what, _ in link.log] == ["publish", "ack"]


def test_red_answers_to_one_reader_are_capped_per_second_and_green_ones_never() -> None:
    """Issue 6 items 2-3: a flood is answered red at most `per_second` times a second per reader;
    other readers have their own allowance; the next second brings a new one."""
    now = [100.0]
    cap = RefusalCap(per_second=3, monotonic=lambda: now[0])
    flood = [Publication("patrol/v1/liyuan/reader/r9/ack", b"red") for _ in range(5)]
    other = [Publication("patrol/v1/liyuan/reader/r1/ack", b"red")]
    assert len(cap.admit(flood)) == 3
    assert len(cap.admit(flood + other)) == 1, "r9 has used its allowance; r1 has its own"
    now[0] += 1.0
    assert len(cap.admit(flood)) == 3
