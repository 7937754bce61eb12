"""The labelled corpus and the redactor's score on it (the issue's thresholds)."""

from __future__ import annotations

from collections import Counter

import pytest

from actors.redaction import PERSONAL_CLASSES, SECRET_CLASSES

from .corpus import generate
from .score import Score, load, score

SECRET_RECALL = 0.99
PERSONAL_RECALL = 0.97
CHAR_PRECISION = 0.95


@pytest.fixture(scope="module")
def result() -> Score:
    return score(load())


class TestCorpus:
    """Big enough, hard enough, and exactly what its committed generator makes."""

    def test_the_committed_file_is_what_the_generator_makes(self) -> None:
        assert generate.main(["--check"]) == 0

    def test_size_and_hard_negatives(self) -> None:
        samples = load()
        assert len(samples) >= 1000
        negatives = sum(s["hard_negative"] for s in samples)
        assert negatives / len(samples) >= 0.40
        assert all(not s["labels"] for s in samples if s["hard_negative"])

    def test_kinds_of_text(self) -> None:
        kinds = Counter(s["kind"] for s in load())
        for kind in ("chat", "log", "yaml", "env", "json", "trace", "code", "markdown"):
            assert kinds[kind] >= 20, kind

    def test_every_class_is_labelled(self) -> None:
        labelled = {label["class"] for s in load() for label in s["labels"]}
        assert labelled == SECRET_CLASSES | PERSONAL_CLASSES


class TestScore:
    """0 leaks; recall >= 99 % per secret class, >= 97 % per personal class; precision >= 95 %."""

    def test_no_leaks(self, result: Score) -> None:
        assert result.leaks == 0

    @pytest.mark.parametrize("kind", sorted(SECRET_CLASSES))
    def test_secret_recall(self, result: Score, kind: str) -> None:
        assert result.recall(kind) >= SECRET_RECALL, [m for m in result.misses if f" {kind}:" in m]

    @pytest.mark.parametrize("kind", sorted(PERSONAL_CLASSES))
    def test_personal_recall(self, result: Score, kind: str) -> None:
        assert result.recall(kind) >= PERSONAL_RECALL, [
            m for m in result.misses if f" {kind}:" in m
        ]

    def test_character_precision(self, result: Score) -> None:
        assert result.precision >= CHAR_PRECISION, result.false_positives[:20]
