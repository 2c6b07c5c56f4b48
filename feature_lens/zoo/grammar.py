"""The zoo's toy English: its vocabulary and the sentence generators of the training corpus.

Every generator takes a `random.Random` and returns `(words, prompt_length)`: the sentence as a list
of words (the tokenizer is word level, so one word is one token) and how many of its leading words
form the *prompt* of a planted task (0 for filler). The held-out split is decided by a stable hash
of the prompt words (`split_of`), so a test prompt never appears, with any continuation, in the
training corpus.

Planted tasks (answers known by construction):
- agreement: "the keys that the man holds | are" (the verb agrees with the head noun, not the
  nearer one);
- ioi: "when mary and john went to the store , john gave a drink to | mary";
- induction: a span of random words, then its start again: the continuation copies the span;
- brackets: nested "(" and "[" groups with words inside; once closing starts, each closer matches
  the innermost open bracket (a stack, not a copy).
"""

from __future__ import annotations

import random
import zlib
from typing import Literal

Split = Literal["train", "test"]

BOS = "<bos>"
UNK = "<unk>"
PAD = "<pad>"
SPECIALS: tuple[str, ...] = (BOS, UNK, PAD)

# (singular, plural)
NOUNS: tuple[tuple[str, str], ...] = (
    ("key", "keys"), ("man", "men"), ("dog", "dogs"), ("cat", "cats"), ("book", "books"),
    ("girl", "girls"), ("boy", "boys"), ("teacher", "teachers"), ("car", "cars"),
    ("house", "houses"), ("tree", "trees"), ("bird", "birds"), ("child", "children"),
    ("woman", "women"), ("friend", "friends"), ("door", "doors"), ("table", "tables"),
    ("letter", "letters"), ("student", "students"), ("doctor", "doctors"), ("river", "rivers"),
    ("city", "cities"), ("box", "boxes"), ("horse", "horses"), ("song", "songs"),
    ("window", "windows"), ("farmer", "farmers"), ("king", "kings"), ("ship", "ships"),
    ("painter", "painters"),
)  # fmt: skip
# (third person singular, plural)
TRANSITIVE: tuple[tuple[str, str], ...] = (
    ("holds", "hold"), ("sees", "see"), ("likes", "like"), ("finds", "find"), ("takes", "take"),
    ("opens", "open"), ("wants", "want"), ("makes", "make"), ("reads", "read"), ("helps", "help"),
    ("knows", "know"), ("loves", "love"), ("follows", "follow"), ("carries", "carry"),
    ("watches", "watch"),
)  # fmt: skip
INTRANSITIVE: tuple[tuple[str, str], ...] = (
    ("runs", "run"), ("sleeps", "sleep"), ("waits", "wait"), ("sings", "sing"), ("falls", "fall"),
    ("works", "work"), ("walks", "walk"), ("smiles", "smile"),
)  # fmt: skip
COPULA: tuple[str, str] = ("is", "are")
ADJECTIVES: tuple[str, ...] = (
    "old", "red", "big", "small", "new", "happy", "green", "tall", "quiet", "dark", "bright",
    "cold", "warm", "young", "long", "short", "blue", "soft", "heavy", "strange",
)  # fmt: skip
PREPOSITIONS: tuple[str, ...] = ("near", "behind", "under", "beside", "with", "above")
NAMES: tuple[str, ...] = (
    "mary", "john", "anna", "david", "sarah", "james", "emma", "tom", "lucy", "peter", "kate",
    "paul", "alice", "mark", "laura", "daniel", "rose", "adam", "helen", "simon",
)  # fmt: skip
PLACES: tuple[str, ...] = (
    "store", "park", "school", "market", "garden", "beach", "office", "station", "library", "lake",
)  # fmt: skip
GIFTS: tuple[str, ...] = (
    "drink", "book", "ball", "gift", "letter", "key", "flower", "cake", "ring", "card", "hat", "pen",
)  # fmt: skip
GIVE_VERBS: tuple[str, ...] = ("gave", "handed", "passed", "sent", "brought", "showed")
OPENERS: tuple[str, str] = ("(", "[")
CLOSERS: tuple[str, str] = (")", "]")
FUNCTION_WORDS: tuple[str, ...] = (
    "the", "a", "some", "that", "when", "and", "went", "to", ",", ".", "then", "but", "very",
    "today", "again",
)  # fmt: skip

#: words a random induction span is drawn from (content words, so the span looks like text)
INDUCTION_POOL: tuple[str, ...] = tuple(
    dict.fromkeys(
        [w for pair in NOUNS for w in pair]
        + list(ADJECTIVES)
        + list(NAMES)
        + [w for pair in TRANSITIVE for w in pair]
    )
)


def vocabulary() -> list[str]:
    """All tokens, specials first, in the fixed order that defines the token ids."""
    words: list[str] = list(SPECIALS)
    groups: list[list[str]] = [
        list(FUNCTION_WORDS),
        [w for pair in NOUNS for w in pair],
        [w for pair in TRANSITIVE for w in pair],
        [w for pair in INTRANSITIVE for w in pair],
        list(COPULA),
        list(ADJECTIVES),
        list(PREPOSITIONS),
        list(NAMES),
        list(PLACES),
        list(GIFTS),
        list(GIVE_VERBS),
        list(OPENERS),
        list(CLOSERS),
    ]
    for group in groups:
        words.extend(group)
    return list(dict.fromkeys(words))


def split_of(prompt: list[str]) -> Split:
    """The split a prompt belongs to: a stable hash sends one prompt in five to "test"."""
    return "test" if zlib.crc32(" ".join(prompt).encode()) % 5 == 0 else "train"


# ---------------------------------------------------------------------------------------------
# planted tasks: each returns (prompt words, answer word, corrupted prompt words, wrong answer)


def agreement(rng: random.Random) -> tuple[list[str], str, list[str], str]:
    """ "the N1 (near the ADJ N2 | that the N2 V)" -> is/are agreeing with N1; corrupt N1's number."""
    head, other = rng.choice(NOUNS), rng.choice(NOUNS)
    plural, other_plural = rng.random() < 0.5, rng.random() < 0.5
    if rng.random() < 0.5:
        middle = [rng.choice(PREPOSITIONS), "the", rng.choice(ADJECTIVES), other[other_plural]]
    else:
        middle = ["that", "the", other[other_plural], rng.choice(TRANSITIVE)[other_plural]]
    prompt = ["the", head[plural], *middle]
    corrupted = ["the", head[not plural], *middle]
    return prompt, COPULA[plural], corrupted, COPULA[not plural]


def ioi(rng: random.Random) -> tuple[list[str], str, list[str], str]:
    """ "when A and B went to the P , S gave a G to" -> the name that is not S; corrupt S."""
    first, second = rng.sample(NAMES, 2)
    subject, indirect = (first, second) if rng.random() < 0.5 else (second, first)
    place, gift, verb = rng.choice(PLACES), rng.choice(GIFTS), rng.choice(GIVE_VERBS)
    head = ["when", first, "and", second, "went", "to", "the", place, ","]
    prompt = [*head, subject, verb, "a", gift, "to"]
    corrupted = [*head, indirect, verb, "a", gift, "to"]
    return prompt, indirect, corrupted, subject


INDUCTION_SPAN = 10
INDUCTION_PREFIX = 5


def induction(rng: random.Random) -> tuple[list[str], str, list[str], str]:
    """A span of 10 distinct random words, then its first 5 again -> the 6th; corrupt the 6th."""
    words = rng.sample(INDUCTION_POOL, INDUCTION_SPAN + 1)
    span, replacement = words[:INDUCTION_SPAN], words[INDUCTION_SPAN]
    answer = span[INDUCTION_PREFIX]
    prompt = [*span, *span[:INDUCTION_PREFIX]]
    broken = [*span[:INDUCTION_PREFIX], replacement, *span[INDUCTION_PREFIX + 1 :]]
    corrupted = [*broken, *broken[:INDUCTION_PREFIX]]
    return prompt, answer, corrupted, replacement


BRACKET_DEPTH = 4
BRACKET_WORDS = 4
BRACKET_CLOSED = 2


def _bracket_groups(rng: random.Random, depth: int, n_words: int) -> tuple[list[int], list[int]]:
    """Random opener types (0 = "(", 1 = "[") and words per opener (0-2 each) summing to n_words."""
    kinds = [rng.randrange(2) for _ in range(depth)]
    while True:
        counts = [rng.randrange(3) for _ in range(depth)]
        if sum(counts) == n_words:
            return kinds, counts


def _bracket_words(rng: random.Random, kinds: list[int], counts: list[int]) -> list[str]:
    words: list[str] = []
    for kind, count in zip(kinds, counts, strict=True):
        words.append(OPENERS[kind])
        words.extend(rng.choice(NOUNS)[0] for _ in range(count))
    return words


def brackets(rng: random.Random) -> tuple[list[str], str, list[str], str]:
    """4 nested openers with 4 words inside, 2 closers -> the closer of the 2nd opener; flip it."""
    kinds, counts = _bracket_groups(rng, BRACKET_DEPTH, BRACKET_WORDS)
    opened = _bracket_words(rng, kinds, counts)
    closers = [CLOSERS[k] for k in reversed(kinds)][:BRACKET_CLOSED]
    target = BRACKET_DEPTH - BRACKET_CLOSED - 1
    flipped_at = [i for i, w in enumerate(opened) if w in OPENERS][target]
    corrupted_open = list(opened)
    corrupted_open[flipped_at] = OPENERS[1 - kinds[target]]
    answer, wrong = CLOSERS[kinds[target]], CLOSERS[1 - kinds[target]]
    return [*opened, *closers], answer, [*corrupted_open, *closers], wrong


# ---------------------------------------------------------------------------------------------
# corpus sentences: (words, prompt length)


def _noun_phrase(rng: random.Random, plural: bool) -> list[str]:
    noun = rng.choice(NOUNS)[plural]
    det = "the" if rng.random() < 0.6 else ("some" if plural else "a")
    return [det, rng.choice(ADJECTIVES), noun] if rng.random() < 0.3 else [det, noun]


def filler(rng: random.Random) -> tuple[list[str], int]:
    """An ordinary sentence with consistent agreement (no planted task)."""
    plural = rng.random() < 0.5
    subject = _noun_phrase(rng, plural)
    kind = rng.randrange(6)
    if kind == 0:
        words = [*subject, rng.choice(INTRANSITIVE)[plural]]
    elif kind == 1:
        words = [*subject, rng.choice(TRANSITIVE)[plural], *_noun_phrase(rng, rng.random() < 0.5)]
    elif kind == 2:
        words = [*subject, COPULA[plural], *(["very"] if rng.random() < 0.3 else [])]
        words.append(rng.choice(ADJECTIVES))
    elif kind == 3:
        words = [rng.choice(NAMES), rng.choice(TRANSITIVE)[0], *_noun_phrase(rng, plural)]
    elif kind == 4:
        a, b = rng.sample(NAMES, 2)
        words = [a, "and", b, rng.choice(INTRANSITIVE)[1]]
    else:
        a, b = rng.sample(NAMES, 2)
        words = [a, rng.choice(GIVE_VERBS), "a", rng.choice(GIFTS), "to", b]
    if rng.random() < 0.15:
        words.append(rng.choice(("today", "again")))
    return [*words, "."], 0


def agreement_sentence(rng: random.Random) -> tuple[list[str], int]:
    prompt, answer, _, _ = agreement(rng)
    tail = [rng.choice(ADJECTIVES)] if rng.random() < 0.7 else ["very", rng.choice(ADJECTIVES)]
    return [*prompt, answer, *tail, "."], len(prompt)


def ioi_sentence(rng: random.Random) -> tuple[list[str], int]:
    prompt, answer, _, _ = ioi(rng)
    return [*prompt, answer, "."], len(prompt)


def induction_sentence(rng: random.Random) -> tuple[list[str], int]:
    """A random span of 4-12 words repeated in full; the prompt key is the span plus 5 repeats."""
    length = rng.randint(4, 12)
    span = rng.sample(INDUCTION_POOL, length)
    return [*span, *span, "."], length + min(length, INDUCTION_PREFIX)


def bracket_sentence(rng: random.Random) -> tuple[list[str], int]:
    """Nested groups of depth 1-5, each opener followed by 0-2 words, then every closer in order."""
    depth = rng.randint(1, 5)
    kinds = [rng.randrange(2) for _ in range(depth)]
    counts = [rng.randrange(3) for _ in range(depth)]
    opened = _bracket_words(rng, kinds, counts)
    closers = [CLOSERS[k] for k in reversed(kinds)]
    return [*opened, *closers, "."], len(opened) + min(depth, BRACKET_CLOSED)


SENTENCE_KINDS = {
    "filler": filler,
    "agreement": agreement_sentence,
    "ioi": ioi_sentence,
    "induction": induction_sentence,
    "brackets": bracket_sentence,
}
#: how often each kind of sentence is drawn for the corpus
MIXTURE: dict[str, float] = {
    "filler": 0.2,
    "agreement": 0.15,
    "ioi": 0.2,
    "induction": 0.25,
    "brackets": 0.2,
}


def sentence(rng: random.Random, split: Split) -> list[str]:
    """One corpus sentence of the given split, its kind drawn from `MIXTURE`."""
    kinds = list(MIXTURE)
    weights = [MIXTURE[k] for k in kinds]
    kind = rng.choices(kinds, weights)[0]
    while True:
        words, prompt_length = SENTENCE_KINDS[kind](rng)
        key = words[: prompt_length or len(words)]
        if split_of(key) == split:
            return words
