"""Tiny Shakespeare as a next-character task with one natural user per speaker.

Parsing: the text is split on blank lines. A block whose first line is ``NAME:`` starts a speech
by NAME (whitespace collapsed, upper-cased, so ``Nurse``/``NURSE`` are one speaker); a block
without such a header continues the previous speaker. A speaker's text is the concatenation of
their speech lines (header lines dropped), each speech ending in a newline.

Sequences: a speaker's character ids ``c`` are cut into non-overlapping windows of ``seq_len``:
``x = c[j:j+seq_len]``, ``y = c[j+1:j+seq_len+1]`` for ``j = 0, seq_len, 2*seq_len, ...``. Speakers
with fewer than ``min_chars`` characters (or fewer than two windows) are dropped; the last 10% of
each kept speaker's windows (at least one) are the test set. ``groups_train`` is the speaker's
index among the kept speakers, in order of first appearance.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from dl.data.dataset import Dataset
from dl.data.root import fetch_hint, require_file
from dl.errors import ConfigError, DataError

# The sorted character set of tiny shakespeare (65 symbols); fixed so ids never depend on the data.
VOCAB = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
VOCAB_SIZE = len(VOCAB)  # 65
UNKNOWN_ID = VOCAB.index(" ")  # characters outside VOCAB map to the space
TEST_FRAC = 0.1

_HEADER = re.compile(r"^\s*([A-Za-z][A-Za-z0-9 ,.'&-]{0,63}):\s*$")
_BLANK = re.compile(r"\n[ \t\r]*\n")
_TABLE = np.full(128, UNKNOWN_ID, dtype=np.int32)
_TABLE[[ord(ch) for ch in VOCAB]] = np.arange(VOCAB_SIZE, dtype=np.int32)


def encode(text: str) -> np.ndarray:
    """Character ids int32 [len(text)]; characters outside VOCAB become UNKNOWN_ID."""
    cp = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")  # [len] code points
    return np.where(cp < 128, _TABLE[np.minimum(cp, 127)], UNKNOWN_ID).astype(np.int32)


def decode(ids: np.ndarray) -> str:
    """Inverse of encode (up to unknown characters)."""
    return "".join(VOCAB[int(i)] for i in np.asarray(ids).reshape(-1))


def split_speakers(text: str) -> dict[str, str]:
    """Speaker name -> concatenated speech text, in order of first appearance."""
    speeches: dict[str, list[str]] = {}
    current: str | None = None
    for block in _BLANK.split(text):
        lines = block.strip("\n").split("\n")
        if not lines or not lines[0].strip():
            continue
        match = _HEADER.match(lines[0])
        if match:
            current = " ".join(match.group(1).split()).upper()
            lines = lines[1:]
        if current is None or not lines:
            continue  # text before the first speaker, or a header with no speech
        speeches.setdefault(current, []).append("\n".join(lines) + "\n")
    return {name: "".join(parts) for name, parts in speeches.items()}


def _windows(ids: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping (x, y) windows, each int32 [n, seq_len], y shifted by one character."""
    n = (len(ids) - 1) // seq_len
    x = ids[: n * seq_len].reshape(n, seq_len)
    y = ids[1 : n * seq_len + 1].reshape(n, seq_len)
    return x, y


def load_shakespeare(root: Path | None, *, seq_len: int = 80, min_chars: int = 1000) -> Dataset:
    """Tiny Shakespeare windows of ``seq_len`` chars, one group per speaker with >= min_chars."""
    if int(seq_len) < 1 or int(min_chars) < 0:
        raise ConfigError(
            f"shakespeare needs seq_len >= 1 and min_chars >= 0, got "
            f"seq_len={seq_len}, min_chars={min_chars}"
        )
    seq_len, min_chars = int(seq_len), int(min_chars)
    path = require_file(root, "tiny_shakespeare", "input.txt")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(
            f"unreadable text file {path} ({type(e).__name__}); "
            f"{fetch_hint('tiny_shakespeare', path.parent.parent)}"
        ) from None
    speakers = split_speakers(text)
    xs_tr, ys_tr, gs_tr, xs_te, ys_te = [], [], [], [], []
    for speech in speakers.values():
        if len(speech) < min_chars:
            continue
        x, y = _windows(encode(speech), seq_len)  # [n_s, T] each
        if len(x) < 2:
            continue  # need one train and one test window
        n_test = max(1, int(len(x) * TEST_FRAC))
        cut = len(x) - n_test
        xs_tr.append(x[:cut])
        ys_tr.append(y[:cut])
        gs_tr.append(np.full(cut, len(gs_tr), dtype=np.int32))
        xs_te.append(x[cut:])
        ys_te.append(y[cut:])
    if not xs_tr:
        raise DataError(
            f"no speaker in {path} has {max(min_chars, 2 * seq_len + 1)} characters "
            f"(seq_len={seq_len}, min_chars={min_chars}); lower min_chars or "
            f"{fetch_hint('tiny_shakespeare', path.parent.parent)}"
        )
    return Dataset(
        name="shakespeare",
        x_train=np.concatenate(xs_tr),  # [n, T] int32
        y_train=np.concatenate(ys_tr),  # [n, T] int32
        x_test=np.concatenate(xs_te),  # [t, T] int32
        y_test=np.concatenate(ys_te),  # [t, T] int32
        num_classes=VOCAB_SIZE,
        input_shape=(seq_len,),
        groups_train=np.concatenate(gs_tr),  # [n] int32 speaker index
    )
