"""Text corpora: the stdlib source by default, ``english`` (the machine's licence texts), or
any text file or directory.

Held-out data is split by whole files drawn at random (seeded), not the alphabetical tail,
so train and held-out text come from the same mix of modules.
"""

from __future__ import annotations

import random
import sysconfig
from dataclasses import dataclass
from pathlib import Path

STDLIB = "stdlib"
# English prose that every Debian-like machine has: the licence texts (legal English, ~260 kB).
ENGLISH = "english"
_ENGLISH_DIR = Path("/usr/share/common-licenses")
EMPTY_CORPUS = (
    "corpus is empty; valid: 'stdlib', 'english', a text file, or a folder of .py/.txt/.md/.rst "
    "files"
)


@dataclass(frozen=True)
class Corpus:
    """A list of documents split into train and held-out by file."""

    train: list[str]
    heldout: list[str]
    source: str

    @property
    def n_chars(self) -> int:
        return sum(map(len, self.train)) + sum(map(len, self.heldout))


def corpus_files(source: str) -> list[Path]:
    """The files of corpus ``source`` ("stdlib", a file, or a folder's text files)."""
    if not isinstance(source, str) or not source.strip():  # Path("") is the current directory
        raise ValueError(EMPTY_CORPUS)
    if source == STDLIB:
        root = Path(sysconfig.get_paths()["stdlib"])
        skip = ("site-packages", "test", "tests", "idlelib", "lib2to3", "turtledemo", "__pycache__")
        return sorted(
            p
            for p in root.rglob("*.py")
            if not any(part in skip for part in p.relative_to(root).parts)
        )
    if source == ENGLISH:
        if not _ENGLISH_DIR.is_dir():
            raise FileNotFoundError(
                f"corpus 'english' reads {_ENGLISH_DIR}, which this machine does not have; "
                "pass a text file or directory instead"
            )
        unique = {
            p.resolve() for p in _ENGLISH_DIR.iterdir() if p.is_file()
        }  # GPL -> GPL-3 etc. are links
        return sorted(unique)
    path = Path(source).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix in {".py", ".txt", ".md", ".rst"}
        )
        if files:
            return files
        raise ValueError(f"corpus directory {path} has no .py/.txt/.md/.rst files")
    raise FileNotFoundError(
        f"corpus {source!r} is neither 'stdlib' nor an existing file or directory"
    )


def load_corpus(
    source: str = STDLIB, *, max_chars: int | None = None, heldout_frac: float = 0.05, seed: int = 0
) -> Corpus:
    """Read documents from ``source``; keep at most ``max_chars`` characters (files in a
    seeded random order); put ``heldout_frac`` of the files in the held-out split."""
    files = corpus_files(source)
    rng = random.Random(seed)
    rng.shuffle(files)
    docs: list[str] = []
    total = 0
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if not text.strip():
            continue
        docs.append(text)
        total += len(text)
        if max_chars is not None and total >= max_chars:
            break
    if len(docs) < 2:
        docs = [d for doc in docs for d in (doc[: len(doc) // 2], doc[len(doc) // 2 :])]
    n_held = max(1, round(len(docs) * heldout_frac))
    return Corpus(train=docs[n_held:], heldout=docs[:n_held], source=source)
