"""Benchmark: what bounding JSON depth costs a body, against decoding it.

Prints microseconds per call of `check_json_depth` and of `msgspec.json.decode` for a
Clockify-sized webhook body (the fast path: two `bytes.count` calls), a 1 MiB body of many
shallow objects (the bracket scan) and a 1 MiB body of long strings full of brackets.

    uv run python benchmarks/json_depth.py [--repeat 200]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import msgspec
from figures import Figures, add_json_option, slug, write_json

from addon_core.web.body import check_json_depth

WEBHOOK = json.dumps(
    {
        "id": "65b0000000000000000000e1",
        "workspaceId": "64b7d2f1e4b0a1a2b3c4d5e6",
        "description": "Planning meeting",
        "userId": "5a0ab5acb07987125438b60f",
        "projectId": "5b1e6b160cb8793dd93ec120",
        "billable": True,
        "tagIds": ["5e7b2b1c1d5e2a0d6a3e1f21"],
        "timeInterval": {"start": "2026-11-26T09:00:00Z", "end": "2026-11-26T10:00:00Z"},
        "project": {"id": "5b1e6b160cb8793dd93ec120", "name": "Internal", "color": "#fff"},
        "user": {"id": "5a0ab5acb07987125438b60f", "name": "Ann"},
    }
).encode()


def many_objects(size: int) -> bytes:
    items = []
    total = 0
    while total < size:
        item = {"id": len(items), "tags": ["a", "b"], "interval": {"start": "x"}}
        items.append(item)
        total += 60
    return json.dumps({"items": items}).encode()


def bracket_strings(size: int) -> bytes:
    text = '[{]} \\" ' * 64
    return json.dumps({"notes": [text] * (size // (len(text) + 4))}).encode()


def per_call(function: Callable[[], Any], repeat: int) -> float:
    function()
    started = time.perf_counter()
    for _ in range(repeat):
        function()
    return (time.perf_counter() - started) / repeat * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    add_json_option(parser)
    args = parser.parse_args()
    figures: Figures = {}
    bodies = {
        "webhook body": WEBHOOK,
        "1 MiB, many objects": many_objects(1 << 20),
        "1 MiB, bracket text": bracket_strings(1 << 20),
    }
    print(
        f"{'body':<22} {'bytes':>9} {'depth check µs':>15} {'decode µs':>11} {'check/decode':>13}"
    )
    for name, body in bodies.items():
        repeat = args.repeat * (100 if len(body) < 10_000 else 1)
        check = per_call(lambda body=body: check_json_depth(body, 64), repeat)
        decode = per_call(lambda body=body: msgspec.json.decode(body), repeat)
        print(f"{name:<22} {len(body):>9} {check:>15.2f} {decode:>11.2f} {check / decode:>13.2f}")
        figures.update({f"{slug(name)}.bytes": len(body), f"{slug(name)}.check_us": check,
                        f"{slug(name)}.decode_us": decode})  # fmt: skip
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
