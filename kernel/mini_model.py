"""A deterministic stand-in for a real model, so that agents calling ``aion.infer`` can be run
and tested without one: it "summarises" a prompt as its three most frequent words.

Not a model: no weights, no randomness. The answer is a JSON string literal (e.g.
``"the cat sat"``), which is what examples/ask_model.wat expects.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field

MODEL_NAME = "mini"
WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


def infer(prompt: str) -> str:
    """The three most frequent words of ``prompt`` (lower-cased; ties broken by first
    appearance), space-separated, as a JSON string literal."""
    words = WORD.findall(prompt.lower())
    first_seen = {word: i for i, word in reversed(list(enumerate(words)))}
    counts = Counter(words)
    top = sorted(counts, key=lambda word: (-counts[word], first_seen[word]))[:3]
    return json.dumps(" ".join(top))


@dataclass
class MiniHost:
    """A Host for local runs and tests: serves the model ``mini`` and records progress."""

    progress_events: list[tuple[float | None, str]] = field(default_factory=list)
    prompts: list[tuple[str, str]] = field(default_factory=list)

    def progress(self, percent: float | None, message: str) -> None:
        self.progress_events.append((percent, message))

    def infer(self, model: str, prompt: str) -> str:
        if model != MODEL_NAME:
            raise KeyError(model)
        self.prompts.append((model, prompt))
        return infer(prompt)
