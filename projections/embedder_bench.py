"""Throughput of the MiniLM embedder: batches of 32 against one text at a time.

``python -m projections.embedder_bench [texts]``. Prints texts/s; asserts nothing (speed is
reported, not tested). The texts are agent-description-like sentences of varied length.
"""

from __future__ import annotations

import sys
import time

from projections.embedder import BATCH, MinilmEmbedder

SUBJECTS = ("invoices", "support emails", "product photos", "sensor readings", "contracts")
VERBS = ("summarises", "translates", "classifies", "extracts the totals of", "checks")
TAILS = (
    "",
    " for the finance team",
    " and flags anything unusual for a human to review",
    " every night, writing a report with the outliers and their likely causes",
)


def texts(count: int) -> list[str]:
    return [
        f"Agent {i} {VERBS[i % 5]} {SUBJECTS[(i // 5) % 5]}{TAILS[(i // 25) % 4]}."
        for i in range(count)
    ]


def rate(embed_calls: list[list[str]], model: MinilmEmbedder) -> float:
    started = time.perf_counter()
    for call in embed_calls:
        model.embed(call)
    return sum(len(c) for c in embed_calls) / (time.perf_counter() - started)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 512
    started = time.perf_counter()
    model = MinilmEmbedder()
    print(f"model loaded in {time.perf_counter() - started:.2f} s")
    sample = texts(count)
    model.embed(sample[:BATCH])  # warm-up: the first run allocates
    batched = rate([sample[i : i + BATCH] for i in range(0, count, BATCH)], model)
    single = rate([[t] for t in sample], model)
    print(f"{count} texts, batches of {BATCH}: {batched:8.1f} texts/s ({1000 / batched:.2f} ms)")
    print(f"{count} texts, one at a time: {single:8.1f} texts/s ({1000 / single:.2f} ms)")
    print(f"batched / one at a time: {batched / single:.2f}x")


if __name__ == "__main__":
    main()
