"""Build output: a header, one line per step, timings, and the error block on failure."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class Log:
    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    def header(self, text: str) -> None:
        self._print(self.out, f"\n[{text}]")

    def step(self, text: str) -> None:
        self._print(self.out, f"- {text}")

    def detail(self, text: str) -> None:
        for line in text.rstrip().splitlines():
            self._print(self.out, f"    {line}")

    def warning(self, title: str, body: str) -> None:
        self._block(self.out, f"Warning: {title}", body)

    def error(self, title: str, body: str) -> None:
        self._block(self.err, f"Error: {title}", body)

    @contextmanager
    def timed(self, done: str) -> Iterator[None]:
        start = time.monotonic()
        yield
        self.step(f"{done} in {time.monotonic() - start:.1f}s")

    def _block(self, stream: TextIO, title: str, body: str) -> None:
        self._print(stream, f"\n[{title}]")
        self._print(stream, body.rstrip() + "\n")

    @staticmethod
    def _print(stream: TextIO, text: str) -> None:
        print(text, file=stream, flush=True)
