"""Where a consumer's time goes: py-spy records it while it drains a backlog; the shares of its functions.

py-spy is not a dependency of the manager: `--py-spy PATH` names one (for example
installed with `pip install py-spy` into a virtual environment of its own).
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

# Every sample counts, waiting included (--idle): a consumer waiting for Redis or the store is
# time spent on the batch as much as its own work.
# py-spy stops the process for each sample: a low rate distorts little.
SAMPLES_PER_SECOND = 200
RAW = ("--format", "raw", "--output")
FRAME = re.compile(r"^(?P<function>.+?) \((?P<file>[^()]*?):\d+\)$")
# The functions a summary names, when on the stack: the consumer's own steps and what they call.
NAMED = (
    "EnrolmentConsumer.handle",
    "EnrolmentConsumer._take",
    "RequestStream._run",
    "_entry",
    "read_entry",
    "EnrolmentConsumer._decide",
    "enrol_editors",
    "_decide_at_a_glance",
    "decide_under_lock",
    "_touch_seats",
    "_document",
    "EnrolmentConsumer._settle",
    "RequestStream.settle",
    "consume",
)


@contextlib.contextmanager
def recording(py_spy: str, pid: int, output: Path) -> Iterator[None]:
    """py-spy records process `pid` (waiting included) into `output` while the block runs."""
    said = output.with_suffix(".log")
    command = [py_spy, "record", "--pid", str(pid), "--rate", str(SAMPLES_PER_SECOND), "--idle", *RAW]
    with said.open("wb") as log:
        recorder = subprocess.Popen([*command, str(output)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while b"Sampling process" not in said.read_bytes():
            if recorder.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"py-spy did not start: {said.read_text(errors='replace')}")
            time.sleep(0.05)
        yield
    finally:
        recorder.send_signal(signal.SIGINT)  # py-spy writes what it recorded and exits
        recorder.wait(timeout=60)


def shares(collapsed: Iterable[str]) -> tuple[int, Counter[str]]:
    """The samples, and for each function the samples with it on the stack (py-spy's raw format)."""
    total = 0
    counts: Counter[str] = Counter()
    for line in collapsed:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        for function in {_function(frame) for frame in stack.split(";")}:
            counts[function] += int(count)
    return total, counts


def summary(path: Path, top: int = 14) -> str:
    """The consumer's named steps and the heaviest other functions, as shares of all samples."""
    total, counts = shares(path.read_text(errors="replace").splitlines() if path.exists() else [])
    if not total:
        return f"{path.name}: no samples"
    lines = [f"{path.name}: {total} samples"]
    named = [(name, counts[name]) for name in NAMED if counts[name]]
    others = [
        (name, count)
        for name, count in counts.most_common()
        if name not in NAMED and count < total and count / total >= 0.02
    ][:top]
    for name, count in [*named, ("--", 0), *others]:
        lines.append("  --" if name == "--" else f"  {100 * count / total:5.1f}%  {name}")
    return "\n".join(lines)


def _function(frame: str) -> str:
    """`Class.method` or `function` of a frame such as `handle (worker/enrolment_consumer.py:170)`."""
    match = FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    module = Path(match["file"]).stem
    return f"{match['function']} [{module}]" if match["function"] not in _OWN_NAMES else match["function"]


_OWN_NAMES = {name.rsplit(".", 1)[-1] for name in NAMED} | set(NAMED)
