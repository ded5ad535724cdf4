"""Synthetic facts for reversal-curse probes (Berglund et al. 2023).

Fictitious entities only: names and descriptions are generated pseudo-words (and, at
text level, short phrases built from common words), never real people. Each entity is a
(name, description) pair in one of three groups:

- ``name_first``: trained only as "<name> <relation> <description>" (A is B),
- ``desc_first``: trained only as "<description> <relation> <name>" (B is A),
- ``both``: trained both ways.

A relation template is ``prefix + first entity + connective + second entity``; the entity
asked about always comes last, so a causal LM completes it and a masked LM fills it.
Templates come from ``n_train + n_heldout`` distinct (prefix, connective) combinations per
direction: the first ``n_train`` are the training paraphrases, the rest are held out
(never seen in training by any pair), so paraphrase failure is measured apart from
reversal failure.

Variants: ``token`` (every name and description is one token) and ``text`` (names are two
words, descriptions four: multi-token, like the paper's). Both use a word-level tokenizer
(:func:`interp.data.tokenizer.word_tokenizer`) built from the fact set's own words.

    facts = make_facts(FactsConfig(variant="text", n_pairs=60, seed=0))
    tok = facts.tokenizer()
    train = facts.training_examples()                     # what models are trained on
    ex = facts.examples("d2n", "train", groups=["name_first"])  # reversed queries, order swapped
    ex = facts.examples_in_place("d2n", "train", groups=["name_first"])  # reversed, in place
    tokens, prompt_len = facts.encode(ex, tok)            # [n, seq_len], slot start per row

Two ways to ask a fact in reverse. **Order swapped** (``examples``): a template whose asked
entity comes last, so for a one-direction pair the sentence order itself was never
trained ("<description> is <name>" for a pair trained "<name> is <description>").
**In place** (``examples_in_place``, masked models only): a sentence in the *trained*
order with its first entity as the slot ("<slot> is <description>"). A model that answers
in place but not order swapped can fill an earlier entity from a later one (no
factorization curse) but does not transfer the fact to a new sentence order.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

GROUPS = ("name_first", "desc_first", "both")
DIRECTIONS = ("n2d", "d2n")  # n2d: name given, description asked; d2n: the reverse
SPLITS = ("train", "heldout")
TRAINED = {"name_first": ("n2d",), "desc_first": ("d2n",), "both": ("n2d", "d2n")}
OBJECTIVE_NAMES = {
    "clm": "causal LM",
    "mlm15": "masked LM 15%",
    "mlmu": "MLM-U",
}  # training objectives, for labels

PREFIXES = (
    "",
    "it is known that",
    "everyone says",
    "as we know",
    "in fact",
    "reportedly",
    "they say",
    "of course",
    "indeed",
    "famously",
    "truly",
    "some say",
)
CONNECTIVES = (
    "is",
    "was",
    "is known as",
    "is also called",
    "has always been",
    "is remembered as",
    "became",
    "is none other than",
    "was once",
)
ROLES = (
    "composer",
    "inventor",
    "founder",
    "author",
    "keeper",
    "mayor",
    "painter",
    "builder",
    "captain",
    "guardian",
    "teacher",
    "singer",
    "healer",
    "pilot",
    "baker",
    "weaver",
    "sculptor",
    "scholar",
    "ranger",
    "herald",
)
ADJECTIVES = (
    "crimson",
    "silent",
    "golden",
    "hidden",
    "frozen",
    "distant",
    "gentle",
    "broken",
    "ancient",
    "hollow",
    "bright",
    "velvet",
    "iron",
    "wandering",
    "quiet",
    "scarlet",
    "misty",
    "northern",
    "lucky",
    "final",
)
NOUNS = (
    "lantern",
    "harbor",
    "orchard",
    "meadow",
    "tower",
    "river",
    "garden",
    "mountain",
    "valley",
    "bridge",
    "forest",
    "island",
    "castle",
    "library",
    "market",
    "temple",
    "canyon",
    "lighthouse",
    "village",
    "observatory",
)
_ONSETS = (
    "b",
    "d",
    "f",
    "g",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "z",
    "br",
    "dr",
    "gl",
    "kr",
    "pl",
    "st",
    "tr",
    "th",
    "sh",
    "zh",
)
_VOWELS = ("a", "e", "i", "o", "u", "ae", "ou", "y")
_CODAS = ("", "n", "r", "l", "s", "th", "x", "m", "nd", "sk")


class FactsConfig(BaseModel):
    """Which facts: variant, number of pairs, paraphrases per direction and the seed."""

    model_config = ConfigDict(extra="forbid")

    variant: Literal["token", "text"] = "token"
    n_pairs: int = 99  # split into three equal groups
    n_train_templates: int = 30
    n_heldout_templates: int = 10
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> FactsConfig:
        if self.n_pairs < 6 or self.n_pairs % 3:
            raise ValueError(f"n_pairs must be a multiple of 3 and >= 6, got {self.n_pairs}")
        n = self.n_train_templates + self.n_heldout_templates
        if (
            self.n_train_templates < 1
            or self.n_heldout_templates < 1
            or n > len(PREFIXES) * len(CONNECTIVES)
        ):
            raise ValueError(
                f"need 1 <= templates and train+heldout <= {len(PREFIXES) * len(CONNECTIVES)}"
            )
        return self


@dataclass(frozen=True)
class Pair:
    """One fictitious entity: its name, its description (word tuples) and its group."""

    index: int
    name: tuple[str, ...]
    desc: tuple[str, ...]
    group: str


@dataclass(frozen=True)
class Template:
    """``prefix first connective second``; ``direction`` says which entity comes first."""

    index: int
    direction: str
    split: str
    prefix: tuple[str, ...]
    connective: tuple[str, ...]

    def words(self, first: Sequence[str], second: Sequence[str]) -> list[str]:
        return [*self.prefix, *first, *self.connective, *second]


@dataclass(frozen=True)
class Example:
    """One sentence about one pair: the words before the target, the target and the words
    after it (``suffix``: empty when the target ends the sentence). ``direction`` is what is
    asked (``n2d``: the description), whatever the sentence order."""

    pair: int
    group: str
    direction: str
    split: str
    template: int
    prompt: tuple[str, ...]
    target: tuple[str, ...]
    suffix: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return " ".join((*self.prompt, *self.target, *self.suffix))


def _pseudo_words(rng: random.Random, n: int, n_syllables: int, taken: set[str]) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        w = "".join(
            rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(n_syllables)
        ) + rng.choice(_CODAS)
        if w not in taken:
            taken.add(w)
            out.append(w)
    return out


class FactSet:
    """Pairs, templates and the examples built from them (deterministic in the config)."""

    def __init__(self, config: FactsConfig, pairs: list[Pair], templates: list[Template]):
        self.config = config
        self.pairs = pairs
        self.templates = templates

    # ---------------------------------------------------------------- views
    def group_pairs(self, group: str) -> list[Pair]:
        return [p for p in self.pairs if p.group == group]

    def templates_of(self, direction: str, split: str) -> list[Template]:
        return [t for t in self.templates if t.direction == direction and t.split == split]

    def target_of(self, pair: Pair, direction: str) -> tuple[str, ...]:
        return pair.desc if direction == "n2d" else pair.name

    def source_of(self, pair: Pair, direction: str) -> tuple[str, ...]:
        return pair.name if direction == "n2d" else pair.desc

    def example(self, pair: Pair, template: Template) -> Example:
        first, second = (
            self.source_of(pair, template.direction),
            self.target_of(pair, template.direction),
        )
        words = template.words(first, second)
        return Example(
            pair.index,
            pair.group,
            template.direction,
            template.split,
            template.index,
            tuple(words[: len(words) - len(second)]),
            tuple(second),
        )

    def examples(
        self,
        direction: str,
        split: str,
        groups: Iterable[str] = GROUPS,
        max_templates: int | None = None,
    ) -> list[Example]:
        """Every (pair in ``groups``) x (template of ``direction``/``split``), template-major."""
        groups = list(groups)
        temps = self.templates_of(direction, split)[:max_templates]
        return [self.example(p, t) for t in temps for p in self.pairs if p.group in groups]

    def in_place_example(self, pair: Pair, template: Template) -> Example:
        """The sentence of ``template`` with its *first* entity as the target slot: it asks the
        opposite direction of the template's order, in that order."""
        first, second = (
            self.source_of(pair, template.direction),
            self.target_of(pair, template.direction),
        )
        asked = DIRECTIONS[1 - DIRECTIONS.index(template.direction)]
        return Example(
            pair.index,
            pair.group,
            asked,
            template.split,
            template.index,
            template.prefix,
            tuple(first),
            (*template.connective, *second),
        )

    def examples_in_place(
        self,
        direction: str,
        split: str,
        groups: Iterable[str] = GROUPS,
        max_templates: int | None = None,
    ) -> list[Example]:
        """``direction`` asked in place: every (pair in ``groups``) x (template of the opposite
        order / ``split``), the asked entity masked where it stands, template-major. For a
        one-direction group asked in its untrained direction these are its trained sentences."""
        groups = list(groups)
        order = DIRECTIONS[1 - DIRECTIONS.index(direction)]
        temps = self.templates_of(order, split)[:max_templates]
        return [self.in_place_example(p, t) for t in temps for p in self.pairs if p.group in groups]

    def training_examples(self) -> list[Example]:
        """What every model is trained on: each group in its trained direction(s), training
        templates."""
        out = []
        for direction in DIRECTIONS:
            groups = [g for g in GROUPS if direction in TRAINED[g]]
            out += self.examples(direction, "train", groups)
        return out

    # ---------------------------------------------------------------- tokens
    @cached_property
    def vocabulary(self) -> list[str]:
        words: dict[str, None] = {}
        for t in self.templates:
            words.update(dict.fromkeys((*t.prefix, *t.connective)))
        for p in self.pairs:
            words.update(dict.fromkeys((*p.name, *p.desc)))
        return list(words)

    def tokenizer(self):
        """A word-level tokenizer over exactly this fact set's words (specials: ids 0..4)."""
        from interp.data.tokenizer import word_tokenizer

        return word_tokenizer(self.vocabulary)

    @property
    def seq_len(self) -> int:
        """Length of the longest sentence in tokens, BOS included (every batch is padded to it)."""
        n_name = len(self.pairs[0].name)
        n_desc = len(self.pairs[0].desc)
        longest = max(len(t.prefix) + len(t.connective) for t in self.templates)
        return 1 + longest + n_name + n_desc

    def encode(
        self, examples: Sequence[Example], tokenizer, seq_len: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``tokens [n, seq_len]`` (BOS, words, then PAD) and ``prompt_len [n]`` (BOS included):
        the target of row i sits at ``tokens[i, prompt_len[i] : prompt_len[i] + len(target)]``,
        followed by its suffix, if any."""
        seq_len = seq_len or self.seq_len
        vocab = tokenizer.get_vocab()
        unk = tokenizer.unk_token_id
        out = np.full((len(examples), seq_len), tokenizer.pad_token_id, dtype=np.int64)
        plen = np.zeros(len(examples), dtype=np.int64)
        for i, ex in enumerate(examples):
            ids = [tokenizer.bos_token_id] + [
                vocab.get(w, unk) for w in (*ex.prompt, *ex.target, *ex.suffix)
            ]
            if len(ids) > seq_len:
                raise ValueError(
                    f"sentence of {len(ids)} tokens does not fit seq_len={seq_len}: {ex.text!r}"
                )
            out[i, : len(ids)] = ids
            plen[i] = 1 + len(ex.prompt)
        return out, plen

    def target_ids(self, pairs: Sequence[Pair], direction: str, tokenizer) -> np.ndarray:
        """``[n_pairs, target_len]`` token ids of each pair's target in ``direction``."""
        vocab = tokenizer.get_vocab()
        return np.array(
            [[vocab[w] for w in self.target_of(p, direction)] for p in pairs], dtype=np.int64
        )


def make_facts(config: FactsConfig) -> FactSet:
    """Generate the pairs and templates of ``config`` (same config -> same facts)."""
    rng = random.Random(config.seed * 7919 + (0 if config.variant == "token" else 1))
    reserved = (
        {w for phrase in (*PREFIXES, *CONNECTIVES) for w in phrase.split()}
        | set(ROLES)
        | set(ADJECTIVES)
        | set(NOUNS)
        | {"the", "of"}
    )
    taken = set(reserved)
    n = config.n_pairs
    if config.variant == "token":
        names = [(w,) for w in _pseudo_words(rng, n, 2, taken)]
        descs = [(w,) for w in _pseudo_words(rng, n, 3, taken)]
    else:
        first = _pseudo_words(rng, n, 2, taken)
        last = _pseudo_words(rng, n, 2, taken)
        names = list(zip(first, last, strict=True))
        combos = [(r, a, o) for r in ROLES for a in ADJECTIVES for o in NOUNS]
        descs = [("the", r, "of", f"{a}-{o}") for r, a, o in rng.sample(combos, n)]
        # adjective-noun joined as one word keeps descriptions 4 tokens and mostly unique tokens
    order = list(range(n))
    rng.shuffle(order)
    group_of = {i: GROUPS[k * 3 // n] for k, i in enumerate(order)}
    pairs = [Pair(i, names[i], descs[i], group_of[i]) for i in range(n)]

    templates: list[Template] = []
    combos = [(p, c) for p in PREFIXES for c in CONNECTIVES]
    n_t = config.n_train_templates + config.n_heldout_templates
    for direction in DIRECTIONS:
        chosen = rng.sample(combos, n_t)
        for k, (p, c) in enumerate(chosen):
            split = "train" if k < config.n_train_templates else "heldout"
            templates.append(
                Template(len(templates), direction, split, tuple(p.split()), tuple(c.split()))
            )
    return FactSet(config, pairs, templates)


__all__ = [
    "FactsConfig",
    "FactSet",
    "Pair",
    "Template",
    "Example",
    "make_facts",
    "GROUPS",
    "DIRECTIONS",
    "SPLITS",
    "TRAINED",
    "OBJECTIVE_NAMES",
]
