"""Parse throughput on the Enron messages: syncd's parse_message against the stdlib peer.

The peer is what one would write without care for speed: ``email.message_from_bytes``
with ``policy.default``, reading the same headers and the body via ``get_body()``. Both
run in this process on the same bytes, read into memory beforehand, so only parsing is
measured. Run: ``.venv/bin/python bench/parse.py``; the last line is JSON for CI.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from connectors.mime_parse import ParseError, parse_message

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
ENRON = CORPUS / "emails" / "enron_berkeley_annotated" / "enron_with_categories"
TARGET_MSGS_PER_S = 2000
ROUNDS = 3  # best of: the machine is shared with other jobs
PEER_HEADERS = ("message-id", "from", "sender", "reply-to", "to", "cc", "bcc", "subject", "date")
PEER_HEADERS += ("in-reply-to", "references", "list-id", "precedence", "auto-submitted")


def ours(raw: bytes) -> None:
    with contextlib.suppress(ParseError):
        parse_message(raw)


def peer(raw: bytes) -> None:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    for name in PEER_HEADERS:
        str(msg.get(name, ""))
    body = msg.get_body(preferencelist=("plain", "html"))
    if body is not None:
        body.get_content()  # type: ignore[attr-defined]


def rate(parse: Callable[[bytes], None], messages: list[bytes]) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for raw in messages:
            parse(raw)
        best = min(best, time.perf_counter() - start)
    return len(messages) / best


def main() -> int:
    if not ENRON.is_dir():
        print(f"the Enron corpus is not at {ENRON} (expected ../shared/corpus from the repo root)")
        return 2
    messages = [path.read_bytes() for path in sorted(ENRON.glob("*/*.txt"))]
    errors = 0
    for raw in messages:
        try:
            parse_message(raw)
        except ParseError:
            errors += 1
    ours_rate = rate(ours, messages)
    peer_rate = rate(peer, messages)
    ratio = ours_rate / peer_rate
    print(f"messages:                      {len(messages)} ({errors} ParseError)")
    print(f"syncd parse_message:           {ours_rate:,.0f} msg/s (target {TARGET_MSGS_PER_S:,})")
    print(f"stdlib policy.default + body:  {peer_rate:,.0f} msg/s")
    print(f"ratio:                         {ratio:.1f}x")
    figures = {
        "bench": "parse",
        "messages": len(messages),
        "parse_errors": errors,
        "syncd_msgs_per_s": round(ours_rate),
        "peer_policy_default_msgs_per_s": round(peer_rate),
        "ratio": round(ratio, 2),
        "target_msgs_per_s": TARGET_MSGS_PER_S,
        "meets_target": ours_rate >= TARGET_MSGS_PER_S,
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
