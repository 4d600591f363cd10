"""Keep TensorFlow's C++ log lines off a terminal that runs kplaybook's command line.

TensorFlow's native libraries write their log straight to file descriptor 2
(absl's "WARNING: All log messages before absl::InitializeLog()", oneDNN and
CUDA notices, "failed call to cuInit" on machines with CUDA libraries but no
GPU) before, and regardless of, ``TF_CPP_MIN_LOG_LEVEL``: the variable does
not silence them in TensorFlow 2.21. Only a filter on the descriptor itself
does. `NativeLogFilter` points descriptor 2 at a pipe and forwards every line
except those in TensorFlow's log formats, so a user still sees Python
warnings and anything else a program writes to stderr.
"""

import os
import re
import sys
import threading

#: TensorFlow's and absl's native log lines, and the continuation lines they print.
NATIVE_LOG_LINE = re.compile(
    rb"^(?:"
    rb"[IWEF]\d{4} [\d:.]+\s+\d+ [\w./-]+:\d+\] "  # absl: I0000 00:00:17.9 3200 port.cc:153]
    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] "  # TF's own: 2024-01-01 12:00:00.0: W ...
    rb"|WARNING: All log messages before absl::InitializeLog\(\)"
    rb"|To enable the following instructions: "  # the second line of cpu_feature_guard's notice
    rb"|(?:WARNING|INFO):tensorflow:"
    rb")"
)


class NativeLogFilter:
    """A context manager that drops TensorFlow's native log lines from file descriptor 2.

    Lines are forwarded as they arrive (a reader thread), so ordering with
    stdout is kept line by line. On exit descriptor 2 is restored and every
    pending line is flushed.

    Example:

    ```python
    with NativeLogFilter():
        import tensorflow as tf     # no absl/oneDNN/CUDA lines on the terminal
    ```
    """

    def __init__(self):
        self._saved = None
        self._thread = None

    def __enter__(self):
        sys.stderr.flush()
        self._saved = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self._thread = threading.Thread(
            target=self._forward, args=(read_end, self._saved), daemon=True
        )
        self._thread.start()
        return self

    @staticmethod
    def _forward(read_end, target):
        with os.fdopen(read_end, "rb", buffering=0) as pipe:
            pending = b""
            while True:
                chunk = pipe.read(65536)
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if not NATIVE_LOG_LINE.match(line):
                        os.write(target, line + b"\n")
            if pending and not NATIVE_LOG_LINE.match(pending):
                os.write(target, pending)

    def __exit__(self, *exc):
        sys.stderr.flush()
        # Restoring descriptor 2 closes the pipe's last write end: the reader
        # gets end-of-file once every line written so far was forwarded.
        os.dup2(self._saved, 2)
        self._thread.join(timeout=5)
        os.close(self._saved)
        return False
