"""The hostile corpus (tests/hostile/make_corpus.py) through image_info and read_image.

Every file, in this process, under a time bound: no exception but LeukViewError
and no hang; a bad file is refused with a reason that names its problem (and
never quotes another file); a good one reads to RGB uint8 at its header's size.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from collections.abc import Iterator

import numpy as np
import pytest
from hostile.make_corpus import GOOD_KINDS, KINDS, REASON_WORDS, Entry, make_corpus

from leukview.core.errors import LeukViewError
from leukview.core.io import image_info, read_image

# Seconds one file may take for image_info and read_image together; a refusal
# from the header takes milliseconds, the largest good file well under a second.
PER_FILE_SECONDS = 20


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[Entry]:
    return make_corpus(tmp_path_factory.mktemp("hostile"))


@contextlib.contextmanager
def deadline(seconds: float, what: str) -> Iterator[None]:
    """Fail (instead of hanging) when the block takes longer than ``seconds``."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def expired(signum, frame):
        raise TimeoutError(f"{what} took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _outcome(entry: Entry):
    """``(info or error, image or error)`` for one file, LeukViewError caught."""
    results = []
    for call in (image_info, read_image):
        try:
            results.append(call(entry.path))
        except LeukViewError as exc:
            results.append(exc)
    return results


def test_the_corpus_is_hostile_and_described(corpus):
    assert len(corpus) >= 50
    assert all(e.kind in KINDS and e.good == (e.kind in GOOD_KINDS) for e in corpus)
    assert sum(e.good for e in corpus) >= 10 and sum(not e.good for e in corpus) >= 30
    assert len({e.name for e in corpus}) == len(corpus)
    assert any(len(e.name) >= 240 for e in corpus)
    kinds = {e.kind for e in corpus if not e.good}
    assert {"truncated", "too-large", "missing-tiles", "external-reference"} <= kinds


def test_every_file_is_read_or_refused_with_its_reason(corpus):
    failures = []
    for entry in corpus:
        label = entry.name.decode("utf-8", "backslashreplace")
        started = time.monotonic()
        with deadline(PER_FILE_SECONDS, label):
            info, image = _outcome(entry)  # anything but LeukViewError fails the test here
        took = time.monotonic() - started
        if entry.good:
            if isinstance(info, LeukViewError) or isinstance(image, LeukViewError):
                failures.append(f"{label}: a good file was refused: {info} / {image}")
                continue
            assert isinstance(image, np.ndarray)
            if image.dtype != np.uint8 or image.shape != (info.height, info.width, 3):
                failures.append(f"{label}: read as {image.dtype} {image.shape}")
            if info.pixel_size_um is not None and not math.isfinite(info.pixel_size_um):
                failures.append(f"{label}: pixel size {info.pixel_size_um}")
            if entry.kind == "ok" and info.warnings:
                failures.append(f"{label}: warnings on a sound file: {info.warnings}")
            if entry.kind == "ok-no-pixel-size" and (info.pixel_size_um or not info.warnings):
                failures.append(f"{label}: absurd pixel size not dropped with a warning: {info}")
            if entry.kind == "ok-warning" and not info.warnings:
                failures.append(f"{label}: no warning")
        else:
            if not isinstance(image, LeukViewError):
                failures.append(f"{label}: a bad file ({entry.note}) was read")
                continue
            reason = image.reason.lower()
            if not any(word in reason for word in REASON_WORDS[entry.kind]):
                failures.append(f"{label}: reason {image.reason!r} does not say {entry.kind}")
            if "root:" in reason or "secret" in reason:
                failures.append(f"{label}: the reason quotes another file: {image.reason!r}")
        if took > PER_FILE_SECONDS / 2:
            failures.append(f"{label}: took {took:.1f} s")
    assert not failures, "\n".join(failures)
