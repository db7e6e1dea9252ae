"""Tokenizers: train a new one on your text, and fingerprint a vocabulary."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

SPECIAL_TOKENS = ("[PAD]", "[UNK]")
KINDS = ("wordlevel", "wordpiece", "bpe", "sentencepiece")


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A short hash of the token -> id map: equal iff two tokenizers index an embedding table alike."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode()).hexdigest()[:16]


PAUSES = ",;:-\u2013\u2014"  # comma, semicolon, colon, hyphen, en and em dash


def punctuation_mask(tokenizer: Any) -> "torch.Tensor":
    """(V,) bool, True at the tokens whose text is only pausing punctuation (``,`` ``;`` ``:`` and dashes): the
    marks ``block_adjacent_repeats`` looks past. Sentence ends are not among them ("... him. Him ..." may repeat)."""
    import torch

    mask = torch.zeros(len(tokenizer), dtype=torch.bool)
    for token, index in tokenizer.get_vocab().items():
        text = tokenizer.convert_tokens_to_string([token]).strip()
        mask[index] = bool(text) and all(c in PAUSES for c in text)
    return mask


def same_word_classes(tokenizer: Any) -> "torch.Tensor":
    """(V,) long: for each token the smallest id of the tokens with the same text up to case ("He" and "he"; a
    sub-word piece such as "##he" stays apart from the word "he"), the classes ``block_adjacent_repeats`` compares."""
    import torch

    classes = torch.arange(len(tokenizer))
    first: dict[str, int] = {}
    for token, index in sorted(tokenizer.get_vocab().items(), key=lambda item: item[1]):
        key = token.lower()
        classes[index] = first.setdefault(key, index)
    return classes


def train_tokenizer(texts: Iterable[str], kind: str = "wordpiece", vocab_size: int = 8000, lowercase: bool = True):
    """Train a ``PreTrainedTokenizerFast`` on ``texts`` with [PAD] = 0 and [UNK] = 1.

    ``wordlevel`` keeps whole words (unknown words become [UNK]); ``wordpiece`` and ``bpe`` split
    unknown words into known pieces; ``sentencepiece`` trains a unigram model with the sentencepiece
    library and carries its pieces and scores over into a fast tokenizer.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if kind not in KINDS:
        raise ValueError(f"unknown tokenizer kind {kind!r}; valid choices are: {', '.join(KINDS)}.")
    if vocab_size < len(SPECIAL_TOKENS) + 1:
        raise ValueError(f"vocab_size must be > {len(SPECIAL_TOKENS)}, got {vocab_size}.")
    special = list(SPECIAL_TOKENS)
    if kind == "sentencepiece":
        return _sentencepiece(texts, vocab_size, lowercase)
    if kind == "wordlevel":
        tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
        trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, special_tokens=special)
    elif kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special)
        tok.decoder = decoders.WordPiece()
    else:
        tok = Tokenizer(models.BPE(unk_token="[UNK]", end_of_word_suffix="</w>"))
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special, end_of_word_suffix="</w>")
        tok.decoder = decoders.BPEDecoder(suffix="</w>")
    norms = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
    tok.normalizer = normalizers.Sequence(norms)
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()])
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=_canonical_ids(tok), pad_token="[PAD]", unk_token="[UNK]")


def _canonical_ids(tok):
    """The same tokenizer with its ids fixed by the vocabulary alone: special tokens first, in their order, then
    every other token sorted. The trainers of ``tokenizers`` give the same pieces but number them differently from
    one process to the next (hash-map order), and the ids pick the frozen table's rows, so two trainings with one
    seed would otherwise start from different tables."""
    from tokenizers import Tokenizer

    state = json.loads(tok.to_str())
    vocab = state["model"]["vocab"]
    special = [t for t in SPECIAL_TOKENS if t in vocab]
    if [vocab[t] for t in special] != list(range(len(special))):
        raise RuntimeError(f"expected the special tokens {special} at ids 0..{len(special) - 1}")
    state["model"]["vocab"] = {t: i for i, t in enumerate(special + sorted(set(vocab) - set(special)))}
    return Tokenizer.from_str(json.dumps(state))


def _sentencepiece(texts: Iterable[str], vocab_size: int, lowercase: bool):
    import tempfile
    from pathlib import Path

    import sentencepiece as spm
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    with tempfile.TemporaryDirectory() as tmp:
        prefix = str(Path(tmp) / "sp")
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(t.lower() if lowercase else t for t in texts), model_prefix=prefix,
            vocab_size=vocab_size, model_type="unigram", hard_vocab_limit=False, pad_id=0, unk_id=1, bos_id=-1,
            eos_id=-1, pad_piece="[PAD]", unk_piece="[UNK]", minloglevel=2,
        )
        sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
        vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    tok = Tokenizer(models.Unigram(vocab, unk_id=1, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else []))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")
