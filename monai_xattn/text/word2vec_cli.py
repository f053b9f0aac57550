"""``monai-xattn word2vec``: train the attribute Word2Vec on the cleaned reports of a datalist."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from monai_xattn.text.attributes import load_vocabulary
from monai_xattn.text.reports import iter_datalist_reports
from monai_xattn.utils.paths import ensure_outside

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # gensim is imported in run() only: the CLI builds every command's parser at start-up
    parser.add_argument("--datalist", type=Path, required=True, help="datalist JSON (entries with report/report_text)")
    parser.add_argument("--root", type=Path, required=True, help="dataset root the report paths are relative to")
    parser.add_argument("--out", type=Path, required=True, help="output vectors (.bin/.txt word2vec, else gensim)")
    parser.add_argument("--splits", nargs="+", default=None, help="datalist lists to read (default: all)")
    parser.add_argument(
        "--sections", nargs="+", default=["findings", "impression"], help="report sections to read, or 'all'"
    )
    parser.add_argument("--vocabulary", type=Path, default=None, help="attribute vocabulary YAML (default: shipped)")
    parser.add_argument("--vector-size", type=int, default=300)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--min-count", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="threads; > 1 is faster but not deterministic")
    parser.add_argument("--replace-invalid-utf8", action="store_true", help="decode non-UTF-8 bytes as U+FFFD")


def run(args: argparse.Namespace) -> int:
    # gensim (behind text.word2vec) is heavy: only this command's run pays for it, not every CLI start-up
    from monai_xattn.text.word2vec import (
        nearest_negatives,
        phrase_token,
        save_word2vec,
        train_word2vec,
        word2vec_corpus,
    )

    try:
        ensure_outside(args.out, args.root)  # dataset folders are read-only to us
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    vocabulary = load_vocabulary(args.vocabulary)
    sections = None if args.sections == ["all"] else tuple(args.sections)
    errors = "replace" if args.replace_invalid_utf8 else "strict"
    reports = iter_datalist_reports(args.datalist, args.root, args.splits, errors=errors)
    corpus = word2vec_corpus(reports, sections, vocabulary)
    sentences, n_reports, no_sentence = corpus.sentences, corpus.n_reports, corpus.no_sentence
    print(f"reports: {n_reports}, sentences: {len(sentences)}, tokens: {sum(map(len, sentences))}")
    if no_sentence:
        print(f"dropped {len(no_sentence)} report(s) with no sentence in {sections or 'the text'}: {no_sentence[:5]}")
    kv = train_word2vec(
        sentences,
        vector_size=args.vector_size,
        window=args.window,
        min_count=args.min_count,
        epochs=args.epochs,
        seed=args.seed,
        workers=args.workers,
    )
    print(f"vocabulary: {len(kv)} words, vectors: {args.vector_size}-d")
    missing = [
        a.name
        for a in vocabulary.attributes
        if not any(phrase_token(f) in kv.key_to_index for f in (a.name, *a.synonyms))
    ]
    if missing:
        # still saved: the vectors are valid, but attribute_vectors() will refuse these attributes
        print(f"warning: {len(missing)} attribute(s) never occur in the corpus: {missing}")
    else:
        name = vocabulary.names[0]
        print(f"nearest negatives of {name!r}: {nearest_negatives(kv, name, 3, vocabulary)}")
    print(f"saved {save_word2vec(kv, args.out)}")
    return 0
