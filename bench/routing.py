"""The cost of one routing decision (region resolution, schedule state, urgency and
policy), over mixed inputs: channels with and without a region, municipality and
postcode hints, texts with and without acute-danger phrases, instants spread over
five years. A bare baseline in the same run (one dict lookup and one datetime
comparison per message) gives the scale of the interpreter itself.

    .venv/bin/python bench/routing.py [--decisions 200000]

Last line: one JSON object with decision_us (median of runs), p99_us and
baseline_us.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from gateway.domain.envelope import ChannelRef, Envelope, LocationHint, Urgency
from gateway.roles.router import Router
from gateway.service import load_config, make_clock

ROOT = Path(__file__).resolve().parent.parent
TEXTS = [
    "Ik wil iets vragen over mijn buren",
    "Mijn moeder wordt geslagen, wat moet ik doen?",
    "Ik ben in gevaar",
    "Hoe werkt een melding?",
    "He has a knife",
    "Mag ik anoniem blijven?",
    "Één vraag: hij is woedend, ik durf niet naar huis en mijn zoon is bang",
]
MUNICIPALITIES = ["Eindhoven", "Maastricht", "Súdwest-Fryslân", "Nergenshuizen", "Amstelveen"]


def make_inputs(count: int, seed: int) -> list[tuple[Envelope, datetime]]:
    rng = random.Random(seed)
    start = datetime(2021, 1, 1, tzinfo=UTC)
    channels = [("http-json", "http-json-zuidoost-brabant"), ("http-json", "http-json-elders")]
    inputs = []
    for n in range(count):
        kind, instance = rng.choice(channels)
        hint = None
        if instance != "http-json-zuidoost-brabant" and rng.random() < 0.7:
            if rng.random() < 0.5:
                hint = LocationHint(municipality=rng.choice(MUNICIPALITIES))
            else:
                hint = LocationHint(postcode=str(rng.choice([1012, 3011, 5611, 9999])))
        envelope = Envelope(
            id=f"m{n}",
            conversation_id=f"c{n % 500}",
            channel=ChannelRef(kind=kind, instance=instance),
            received_at=start,
            text=rng.choice(TEXTS),
            sender="p",
            reply_handle="h",
            location_hint=hint,
            urgency=Urgency.HIGH if rng.random() < 0.05 else Urgency.NORMAL,
        )
        instant = start + timedelta(seconds=rng.randrange(5 * 365 * 24 * 3600))
        inputs.append((envelope, instant))
    return inputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("GW_HTTP_JSON_ZUIDOOST_BRABANT_TOKEN", "bench")
    config = load_config(ROOT / "config")
    router = Router(config, broker=None, store=None, metrics=None, clock=make_clock(None))  # type: ignore[arg-type]
    inputs = make_inputs(args.decisions, seed=7)
    known: dict[str, tuple[str, bool]] = {"c7": ("utrecht", True)}

    for envelope, instant in inputs[:20_000]:  # warm the per-day schedule cache, as a running router has
        router.decide(envelope, router.resolve(envelope, known.get(envelope.conversation_id)), instant)

    runs, per_chunk = [], []
    for _ in range(args.runs):
        began = time.perf_counter()
        for chunk_start in range(0, len(inputs), 1000):
            chunk_began = time.perf_counter()
            for envelope, instant in inputs[chunk_start : chunk_start + 1000]:
                resolution = router.resolve(envelope, known.get(envelope.conversation_id))
                router.decide(envelope, resolution, instant)
            per_chunk.append((time.perf_counter() - chunk_began) / 1000 * 1e6)
        runs.append((time.perf_counter() - began) / len(inputs) * 1e6)

    queues = {code: f"gw.region.{code}.normal" for code in config.team_codes}
    noon = datetime(2025, 1, 1, 12, tzinfo=UTC)
    baseline_runs = []
    for _ in range(args.runs):
        began = time.perf_counter()
        for envelope, instant in inputs:
            _ = queues.get(envelope.channel.instance, "national"), instant < noon
        baseline_runs.append((time.perf_counter() - began) / len(inputs) * 1e6)

    decision_us = statistics.median(runs)
    result = {
        "decisions": len(inputs) * args.runs,
        "decision_us": round(decision_us, 2),
        "p99_us": round(sorted(per_chunk)[int(0.99 * (len(per_chunk) - 1))], 2),
        "baseline_us": round(statistics.median(baseline_runs), 3),
        "ratio_to_baseline": round(decision_us / statistics.median(baseline_runs), 1),
    }
    print(
        f"one routing decision: {result['decision_us']} us (median of {args.runs} runs of "
        f"{len(inputs)}), p99 of 1000-decision chunks {result['p99_us']} us; "
        f"bare dict lookup {result['baseline_us']} us"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
