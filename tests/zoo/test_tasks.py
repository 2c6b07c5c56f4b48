"""Planted tasks and corpus: equal lengths, minimal answer-flipping corruptions, held-out split."""

from __future__ import annotations

import pytest
import torch

from feature_lens.errors import InputError
from feature_lens.zoo import TASKS, corpus_texts, task_prompts
from feature_lens.zoo.corpus import corpus_tokens
from feature_lens.zoo.grammar import NOUNS, split_of, vocabulary
from feature_lens.zoo.tokenizer import token_ids


@pytest.mark.parametrize("task", TASKS)
def test_pairs_have_equal_length_and_one_edit_that_flips_the_answer(task: str) -> None:
    p = task_prompts(task, 50, seed=3)
    assert p.clean.shape == p.corrupted.shape
    assert p.clean.shape[0] == 50 == len(p.texts) == len(p.corrupted_texts)
    bos = token_ids()["<bos>"]
    assert (p.clean[:, 0] == bos).all()
    assert (p.corrupted[:, 0] == bos).all()
    assert ((p.clean[:, 1:] == bos).sum() == 0).item()
    assert ((p.clean != p.corrupted).sum(1) == 1).all(), "exactly one token edited"
    assert (p.correct != p.wrong).all()
    ids = token_ids()
    for text, row in zip(p.texts, p.clean, strict=True):
        assert [ids[w] for w in text.split()] == row[1:].tolist()


def test_answers_follow_the_task_rules() -> None:
    ids = token_ids()
    agree = task_prompts("agreement", 20)
    for text, correct in zip(agree.texts, agree.correct, strict=True):
        head = text.split()[1]
        plural = any(head == pl for _, pl in NOUNS)
        assert correct.item() == ids["are" if plural else "is"]
    ioi = task_prompts("ioi", 20)
    for text, correct, wrong in zip(ioi.texts, ioi.correct, ioi.wrong, strict=True):
        words = text.split()
        names, subject = {words[1], words[3]}, words[9]
        assert wrong.item() == ids[subject]
        assert correct.item() == ids[(names - {subject}).pop()]
    ind = task_prompts("induction", 20)
    for row, correct in zip(ind.clean, ind.correct, strict=True):
        assert correct.item() == row[1 + 5].item()
        assert row[1:6].tolist() == row[11:16].tolist()


def test_same_call_same_prompts_and_splits_are_disjoint() -> None:
    a, b = task_prompts("ioi", 30, seed=1), task_prompts("ioi", 30, seed=1)
    assert torch.equal(a.clean, b.clean)
    assert a.texts == b.texts
    train = task_prompts("brackets", 200, split="train")
    test = task_prompts("brackets", 200, split="test")
    assert not set(train.texts) & set(test.texts)
    assert all(split_of(t.split()) == "test" for t in test.texts)


def test_test_prompts_never_occur_in_the_training_corpus() -> None:
    train_text = " ".join(corpus_texts(300, seed=0))
    for task in ("agreement", "ioi"):
        for text in task_prompts(task, 100).texts:
            assert f" {text} " not in f" {train_text} "


def test_corpus_is_deterministic_and_fills_the_context() -> None:
    assert corpus_texts(5, seed=2) == corpus_texts(5, seed=2)
    assert corpus_texts(5, seed=2) != corpus_texts(5, seed=3)
    tokens = corpus_tokens(5, seed=2, n_ctx=40)
    assert tokens.shape == (5, 40)
    assert all(len(t.split()) == 39 for t in corpus_texts(5, seed=2, n_ctx=40))
    assert int(tokens.max()) < len(vocabulary())


def test_unknown_task_is_an_input_error() -> None:
    with pytest.raises(InputError, match="unknown zoo task"):
        task_prompts("sorting", 3)
