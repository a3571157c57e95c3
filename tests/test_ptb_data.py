"""Penn Treebank loading: the real word-level files, checksums, clear errors, the char-level loader."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch

from nas_env.data.ptb import WORD_FILES, find_ptb, load_ptb, ptb_available
from nas_env.errors import DatasetError
from nas_env.training.ptb import batchify


@pytest.fixture(scope="session")
def ptb_dir() -> Path:
    """The real data root; fails (not skips) when PTB is missing, since CI must have it."""
    import os

    root = Path(os.environ["NAS_ENV_DATA"])
    assert (root / "ptb" / "ptb.train.txt").is_file(), f"Penn Treebank not found under {root}/ptb"
    return root


def test_real_word_level_ptb(ptb_dir: Path) -> None:
    corpus = load_ptb(ptb_dir, download_missing=False)
    # Mikolov's splits: 887,521 / 70,390 / 78,669 words plus one <eos> per line.
    assert (len(corpus.train), len(corpus.valid), len(corpus.test)) == (
        887_521 + 42_068,
        70_390 + 3_370,
        78_669 + 3_761,
    )
    assert corpus.vocab_size == 10_000 and corpus.level == "word"
    assert corpus.vocab[:3] == ("the", "<unk>", "<eos>")  # by decreasing frequency
    assert corpus.train.dtype == torch.int64 and int(corpus.train.max()) == 9_999
    first_line = (ptb_dir / "ptb" / "ptb.train.txt").read_text().split("\n", 1)[0].split()
    assert [corpus.vocab[i] for i in corpus.train[: len(first_line) + 1]] == [*first_line, "<eos>"]
    assert load_ptb(ptb_dir, download_missing=False) is corpus  # cached per process
    assert ptb_available(ptb_dir) and not ptb_available(ptb_dir, "char")


def test_missing_data_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(
        DatasetError,
        match=re.escape(f"looked for ptb.train.txt, ptb.valid.txt, ptb.test.txt in {tmp_path}/ptb"),
    ):
        load_ptb(tmp_path, download_missing=False)
    with pytest.raises(DatasetError, match="character-level files come from Mikolov's simple-examples"):
        find_ptb(tmp_path, "char")
    with pytest.raises(
        ValueError,
        match=re.escape(
            "level='words' is not allowed; expected one of ['word', 'char']. Did you mean 'word'?"
        ),
    ):
        load_ptb(tmp_path, level="words")


def test_corrupt_file_fails_its_checksum(ptb_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ptb"
    folder.mkdir()
    for name, _ in WORD_FILES.values():
        shutil.copy(ptb_dir / "ptb" / name, folder / name)
    with (folder / "ptb.valid.txt").open("a") as f:
        f.write(" extra\n")
    with pytest.raises(DatasetError, match=re.escape(f"{folder / 'ptb.valid.txt'} is corrupt (md5 mismatch")):
        load_ptb(tmp_path, download_missing=False)


def write_char_ptb(root: Path, n_lines: int = 200) -> None:
    """A tiny synthetic corpus in the ptb.char layout (characters separated by spaces, '_' between words)."""
    gen = torch.Generator().manual_seed(0)
    letters = "abcdefgh"
    folder = root / "ptb"
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid", "test"):
        lines = []
        for _ in range(n_lines):
            words = [
                "".join(letters[int(i)] for i in torch.randint(8, (3,), generator=gen)) for _ in range(4)
            ]
            lines.append(" " + " _ ".join(" ".join(w) for w in words) + " ")
        (folder / f"ptb.char.{split}.txt").write_text("\n".join(lines) + "\n")


def test_char_level_loader(tmp_path: Path) -> None:
    write_char_ptb(tmp_path)
    corpus = load_ptb(tmp_path, level="char")
    assert corpus.level == "char" and set(corpus.vocab) == {*"abcdefgh", "_", "<eos>"}
    assert len(corpus.train) == 200 * (4 * 3 + 3 + 1)
    assert ptb_available(tmp_path, "char")


def test_batchify_cuts_contiguous_streams() -> None:
    data = batchify(torch.arange(10), 3)
    assert data.tolist() == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
