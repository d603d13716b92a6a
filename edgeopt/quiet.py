"""Keep chatty native libraries (TensorFlow, the torch exporter, onnxruntime's quantizer)
off the user's terminal, but keep what they said for the error message when they fail."""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Captured:
    text: str = ""

    def tail(self, lines: int = 5) -> str:
        return "\n".join(self.text.strip().splitlines()[-lines:])


@contextmanager
def captured_output():
    """Redirect file descriptors 1 and 2 (C and Python writes alike) to a temp file."""
    captured = Captured()
    with tempfile.TemporaryFile() as log:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield captured
        finally:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            log.seek(0)
            captured.text = log.read().decode("utf-8", "replace")
