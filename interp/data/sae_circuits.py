"""Circuit tasks: positive prompts, paired counterfactual negatives, answer tokens.

A task turns a model's tokenizer into a :class:`PromptSet`: ``clean[i]`` is a prompt the
model can complete (its answer ``answer[i]``), ``corrupt[i]`` is the *same* prompt with the
predictive structure broken by replacing one token (same length, so head outputs can be
patched position by position). The per-prompt metric (higher = more correct) is read at
``answer_pos``: the logit difference ``logit[answer] - logit[wrong]`` (ioi), the
log-probability of the answer (induction, whose corruption has no competing answer), or a
probability difference (greater-than).

Tasks (registry :data:`TASKS`):

- ``induction``: ``[bos] r_1 .. r_L r_1`` -> ``r_2`` (random symbols); corrupt replaces the
  first ``r_1`` by a fresh symbol, so nothing earlier says what follows ``r_1``.
- ``ioi``: "when Mary and John went to the store , John gave a drink to" -> "Mary";
  corrupt replaces the second subject by a third name (the IOI paper's ABC corruption),
  so both earlier names are equally likely.
- ``greater_than`` (natural English; for GPT-2-sized models): "The war lasted from the
  year 1732 to the year 17" -> a year > 32; corrupt uses "01".

The template language the zoo's circuit models are trained on (:func:`template_corpus`)
mixes these task segments with plain sentences from a small grammar, so heads outside each
circuit have real next-token work to do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

NAMES = [
    "Mary",
    "John",
    "Alice",
    "Bob",
    "Tom",
    "Anna",
    "James",
    "Kate",
    "Paul",
    "Lucy",
    "Mark",
    "Emma",
    "David",
    "Sarah",
    "Peter",
    "Laura",
]
PLACES = ["store", "park", "school", "office", "garden", "station"]
OBJECTS = ["drink", "book", "ball", "key", "letter", "ring"]
VERBS = ["gave", "handed", "passed", "showed"]
SYMBOLS = [f"s{i}" for i in range(32)]

# Plain next-token language: a small grammar with agreement-free but structured sentences.
DETS = ["the", "a"]
ADJS = ["big", "small", "red", "old", "happy", "quiet"]
NOUNS = ["dog", "cat", "man", "bird", "car", "tree", "child", "horse"]
TVERBS = ["saw", "liked", "chased", "found", "heard", "followed"]
PREPS = ["near", "behind", "under", "with"]

IOI_TEMPLATE = "when {A} and {B} went to the {place} , {S} {verb} a {obj} to"
IOI_TEMPLATE_NATURAL = "When {A} and {B} went to the {place}, {S} {verb} a {obj} to"
GT_TEMPLATE = "The {noun} lasted from the year {century}{yy:02d} to the year {century}"
GT_NOUNS = ["war", "expedition", "drought", "rebellion", "dynasty", "siege"]
# docstring (Heimersheim & Janiak 2023): argument names, function names, one-line descriptions
DOC_ARGS = [
    "files",
    "size",
    "name",
    "path",
    "data",
    "mode",
    "key",
    "value",
    "user",
    "url",
    "text",
    "count",
    "index",
    "items",
    "target",
    "source",
    "state",
    "model",
    "port",
    "host",
    "token",
    "label",
    "shape",
    "order",
    "page",
    "limit",
    "level",
    "color",
]
DOC_FUNCS = ["load", "update", "check", "process", "create", "parse", "render", "fetch"]
DOC_WORDS = ["item", "object", "request", "message", "record", "image", "field", "entry"]
DOC_TEMPLATE = (
    'def {fn}(self, {A}, {B}, {C}):\n    """{desc} the {word}.\n\n'
    "    :param {A}: the {wa}\n    :param {B}: the {wb}\n    :param"
)


def template_vocab() -> list[str]:
    """Every word of the template language (the zoo circuit models' word tokenizer)."""
    words = [*NAMES, *PLACES, *OBJECTS, *VERBS, *SYMBOLS, *DETS, *ADJS, *NOUNS, *TVERBS, *PREPS]
    words += "when and went to the , a .".split()
    return list(dict.fromkeys(words))


# ------------------------------------------------------------------ prompt sets
@dataclass
class PromptSet:
    """Paired prompts of one task (all tensors on CPU).

    clean, corrupt: ``[n, pos]`` token ids, equal shapes, differing only where the task
    breaks its structure. answer, wrong: ``[n]`` token ids scored at ``answer_pos`` ``[n]``.
    For ``greater_than`` ``answer``/``wrong`` are unused; ``good_mask``/``bad_mask``
    ``[n, vocab]`` mark the tokens counted as correct / incorrect.
    """

    task: str
    clean: torch.Tensor
    corrupt: torch.Tensor
    answer: torch.Tensor
    wrong: torch.Tensor
    answer_pos: torch.Tensor
    metric: str = "logit_diff"
    good_mask: torch.Tensor | None = None
    bad_mask: torch.Tensor | None = None
    texts: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.clean)

    def subset(self, idx: Sequence[int] | torch.Tensor) -> PromptSet:
        idx = torch.as_tensor(idx, dtype=torch.long)
        gm = None if self.good_mask is None else self.good_mask[idx]
        bm = None if self.bad_mask is None else self.bad_mask[idx]
        texts = [self.texts[i] for i in idx.tolist()] if self.texts else []
        return PromptSet(
            self.task,
            self.clean[idx],
            self.corrupt[idx],
            self.answer[idx],
            self.wrong[idx],
            self.answer_pos[idx],
            self.metric,
            gm,
            bm,
            texts,
        )

    def metric_fn(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``fn(logits [b, pos, vocab], idx [b]) -> [b]``: the task metric of prompts ``idx``."""
        return make_metric(self)


def make_metric(ps: PromptSet) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The per-prompt metric of ``ps`` as ``fn(logits, idx) -> [b]`` (higher = more correct)."""

    def fn(logits: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(len(idx), device=logits.device)
        last = logits[rows, ps.answer_pos[idx].to(logits.device)]  # [b, vocab]
        if ps.metric == "prob_diff":  # greater-than: p(year > YY) - p(year <= YY)
            p = last.float().softmax(-1)
            good = ps.good_mask[idx].to(logits.device)
            bad = ps.bad_mask[idx].to(logits.device)
            return (p * good).sum(-1) - (p * bad).sum(-1)
        if ps.metric == "logprob":
            return last.float().log_softmax(-1)[rows, ps.answer[idx].to(logits.device)]
        return (
            last[rows, ps.answer[idx].to(logits.device)]
            - last[rows, ps.wrong[idx].to(logits.device)]
        )

    return fn


# ------------------------------------------------------------------ tokenisation
def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def _is_word_level(tokenizer) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend is not None and type(backend.model).__name__ == "WordLevel"


def single_tokens(tokenizer, words: Sequence[str], leading_space: bool = True) -> dict[str, int]:
    """``{word: id}`` for the words that are one token (with a leading space for BPE)."""
    out = {}
    word_level = _is_word_level(tokenizer)
    unk = getattr(tokenizer, "unk_token_id", None)
    for w in words:
        ids = _encode(tokenizer, w if word_level or not leading_space else " " + w)
        if len(ids) == 1 and ids[0] != unk:
            out[w] = ids[0]
    return out


def vocab_symbols(tokenizer) -> list[int]:
    """Every token id of the vocabulary that is not a special token (in id order): the induction
    task needs distinct tokens, not words, so any vocabulary serves."""
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    return [i for i in sorted(tokenizer.get_vocab().values()) if i not in special]


def vocab_names(tokenizer, limit: int = 64) -> list[str]:
    """Capitalised alphabetic words that are one token (with a leading space for BPE), read from the
    vocabulary: stand-in names for IOI when the tokenizer lacks our list of names."""
    word_level = _is_word_level(tokenizer)
    out = []
    for tok in sorted(tokenizer.get_vocab()):
        word = tok if word_level else tok[1:] if tok[:1] in ("Ġ", "▁") else None
        if word and len(word) > 2 and word[0].isupper() and word.isalpha() and word[1:].islower():
            out.append(word)
    return list(single_tokens(tokenizer, out[: limit * 4]))[:limit]


def _bos(tokenizer) -> list[int]:
    b = getattr(tokenizer, "bos_token_id", None)
    return [] if b is None else [b]


# ------------------------------------------------------------------ tasks
def make_induction(
    tokenizer, n: int, seed: int, length: int = 10, symbols: Sequence[str] | None = None
) -> PromptSet:
    """``[bos] r_1..r_L r_1`` -> ``r_2``; corrupt: the first ``r_1`` replaced by an unused symbol.

    Metric: log-probability of ``r_2`` (the corrupt prompt has no competing answer)."""
    rng = np.random.default_rng(seed)
    sym = single_tokens(tokenizer, symbols or SYMBOLS)
    ids = np.array(list(sym.values()))
    if len(ids) < length + 2 and symbols is None:  # another tokenizer: any distinct tokens will do
        ids = np.array(vocab_symbols(tokenizer))
    if len(ids) < length + 2:
        raise ValueError(
            f"induction needs >= {length + 2} distinct non-special tokens; the tokenizer has "
            f"{len(ids)}"
        )
    bos = _bos(tokenizer)
    clean, corrupt, ans = [], [], []
    for _ in range(n):
        pick = rng.choice(ids, size=length + 1, replace=False)
        seq, fresh = pick[:length].tolist(), int(pick[length])
        clean.append(bos + seq + [seq[0]])
        corrupt.append(bos + [fresh] + seq[1:] + [seq[0]])
        ans.append(seq[1])
    c, k = torch.tensor(clean), torch.tensor(corrupt)
    a = torch.tensor(ans)
    pos = torch.full((n,), c.shape[1] - 1)
    return PromptSet("induction", c, k, a, a.clone(), pos, metric="logprob")


def make_ioi(tokenizer, n: int, seed: int, style: str = "template") -> PromptSet:
    """IOI prompts (ABBA and BABA orders); corrupt replaces the second subject by a third name."""
    rng = np.random.default_rng(seed)
    template = IOI_TEMPLATE if style == "template" else IOI_TEMPLATE_NATURAL
    names = list(single_tokens(tokenizer, NAMES))
    if len(names) < 3:  # another tokenizer: capitalised single-token words from its vocabulary
        names = vocab_names(tokenizer)
    if len(names) < 3:
        raise ValueError(
            f"ioi needs at least 3 single-token names; the tokenizer has {len(names)} of ours "
            f"({', '.join(NAMES[:6])}, ...) and no capitalised single-token words to use instead"
        )
    bos = _bos(tokenizer)
    clean, corrupt, ans, wrong, texts = [], [], [], [], []
    width = None
    for _ in range(n * 20):
        if len(clean) == n:
            break
        io, s, c3 = rng.choice(names, size=3, replace=False).tolist()
        a, b = (io, s) if rng.random() < 0.5 else (s, io)
        fill = dict(
            A=a,
            B=b,
            place=str(rng.choice(PLACES)),
            verb=str(rng.choice(VERBS)),
            obj=str(rng.choice(OBJECTS)),
        )
        t_clean = template.format(S=s, **fill)
        t_corr = template.format(S=c3, **fill)
        x, y = bos + _encode(tokenizer, t_clean), bos + _encode(tokenizer, t_corr)
        if len(x) != len(y) or (width is not None and len(x) != width):
            continue
        width = len(x)
        clean.append(x)
        corrupt.append(y)
        ans.append(single_tokens(tokenizer, [io])[io])
        wrong.append(single_tokens(tokenizer, [s])[s])
        texts.append(t_clean)
    if len(clean) < n:
        raise ValueError(f"could only build {len(clean)} equal-length IOI prompts of {n}")
    c = torch.tensor(clean)
    return PromptSet(
        "ioi",
        c,
        torch.tensor(corrupt),
        torch.tensor(ans),
        torch.tensor(wrong),
        torch.full((n,), c.shape[1] - 1),
        texts=texts,
    )


def make_greater_than(tokenizer, n: int, seed: int) -> PromptSet:
    """Greater-than (Hanna et al.): metric p(YY > start) - p(YY <= start); corrupt starts at 01.

    A tokenizer that splits numbers into digits (SmolLM2, Llama 3) cannot put a two-digit year
    in one token: the next token is the tens digit. There the metric is p(tens > t) - p(tens < t)
    for the start year's tens digit ``t`` (a tens digit equal to ``t`` leaves the answer to the
    ones digit, so it counts on neither side), and start years have ``1 <= t <= 8``."""
    rng = np.random.default_rng(seed)
    two = single_tokens(tokenizer, [f"{i:02d}" for i in range(100)], leading_space=False)
    digits = single_tokens(tokenizer, [str(i) for i in range(10)], leading_space=False)
    by_digit = len(two) < 90
    if by_digit and len(digits) < 10:
        raise ValueError(
            "greater_than needs a tokenizer with two-digit year tokens (e.g. GPT-2) or "
            f"single-digit tokens (e.g. SmolLM2); this one has {len(two)} of 100 and {len(digits)} "
            "of 10"
        )
    bos = _bos(tokenizer)
    vocab = len(tokenizer)
    clean, corrupt, good, bad, texts = [], [], [], [], []
    width = None
    for _ in range(n * 50):
        if len(clean) == n:
            break
        yy = int(rng.integers(10, 90)) if by_digit else int(rng.integers(2, 99))
        century = int(rng.choice([11, 12, 13, 14, 15, 16, 17, 18]))
        noun = str(rng.choice(GT_NOUNS))
        t = GT_TEMPLATE.format(noun=noun, century=century, yy=yy)
        tc = GT_TEMPLATE.format(noun=noun, century=century, yy=1)
        x, y = bos + _encode(tokenizer, t), bos + _encode(tokenizer, tc)
        if (
            (not by_digit and f"{yy:02d}" not in two)
            or len(x) != len(y)
            or (width is not None and len(x) != width)
        ):
            continue
        width = len(x)
        g = torch.zeros(vocab, dtype=torch.bool)
        b = torch.zeros(vocab, dtype=torch.bool)
        if by_digit:
            for s, i in digits.items():
                if int(s) != yy // 10:
                    (g if int(s) > yy // 10 else b)[i] = True
        else:
            for s, i in two.items():
                (g if int(s) > yy else b)[i] = True
        clean.append(x)
        corrupt.append(y)
        good.append(g)
        bad.append(b)
        texts.append(t)
    if len(clean) < n:
        raise ValueError(f"could only build {len(clean)} equal-length greater-than prompts of {n}")
    c = torch.tensor(clean)
    zeros = torch.zeros(n, dtype=torch.long)
    return PromptSet(
        "greater_than",
        c,
        torch.tensor(corrupt),
        zeros,
        zeros.clone(),
        torch.full((n,), c.shape[1] - 1),
        metric="prob_diff",
        good_mask=torch.stack(good),
        bad_mask=torch.stack(bad),
        texts=texts,
    )


def make_docstring(tokenizer, n: int, seed: int) -> PromptSet:
    """Docstring (Heimersheim & Janiak 2023): a method ``def f(self, A, B, C)`` whose docstring
    has documented ``A`` and ``B`` continues ``:param`` with `` C``; corrupt renames ``C`` in the
    signature to an unused argument name ``D`` (their "random def args" corruption), so the
    signature now says ``D`` comes next. Metric: ``logit[C] - logit[D]``. Needs argument names
    that are single tokens with a leading space (any BPE tokenizer of code has them)."""
    rng = np.random.default_rng(seed)
    args = list(single_tokens(tokenizer, DOC_ARGS))
    if len(args) < 4:
        raise ValueError(
            f"docstring needs >= 4 single-token argument names; the tokenizer has {len(args)} of "
            f"ours ({', '.join(DOC_ARGS[:6])}, ...)"
        )
    ids = single_tokens(tokenizer, args)
    bos = _bos(tokenizer)
    clean, corrupt, ans, wrong, texts = [], [], [], [], []
    width = None
    for _ in range(n * 50):
        if len(clean) == n:
            break
        a, b, c, d = rng.choice(args, size=4, replace=False).tolist()
        fill = dict(
            fn=str(rng.choice(DOC_FUNCS)),
            desc=str(rng.choice(["Load", "Update", "Check", "Process"])),
            word=str(rng.choice(DOC_WORDS)),
            wa=str(rng.choice(DOC_WORDS)),
            wb=str(rng.choice(DOC_WORDS)),
            A=a,
            B=b,
        )
        t_clean = DOC_TEMPLATE.format(C=c, **fill)
        x, y = (
            bos + _encode(tokenizer, t_clean),
            bos + _encode(tokenizer, DOC_TEMPLATE.format(C=d, **fill)),
        )
        if len(x) != len(y) or (width is not None and len(x) != width):
            continue
        width = len(x)
        clean.append(x)
        corrupt.append(y)
        ans.append(ids[c])
        wrong.append(ids[d])
        texts.append(t_clean)
    if len(clean) < n:
        raise ValueError(f"could only build {len(clean)} equal-length docstring prompts of {n}")
    cl = torch.tensor(clean)
    return PromptSet(
        "docstring",
        cl,
        torch.tensor(corrupt),
        torch.tensor(ans),
        torch.tensor(wrong),
        torch.full((n,), cl.shape[1] - 1),
        texts=texts,
    )


TASKS: dict[str, Callable[..., PromptSet]] = {
    "induction": make_induction,
    "ioi": lambda tok, n, seed: make_ioi(tok, n, seed, "template"),
    "ioi_natural": lambda tok, n, seed: make_ioi(tok, n, seed, "natural"),
    "greater_than": make_greater_than,
    "docstring": make_docstring,
}


def make_task(name: str, tokenizer, n: int, seed: int) -> PromptSet:
    """Build ``n`` paired prompts of task ``name`` (see :data:`TASKS`)."""
    from interp.utils import unknown_name_error

    if name not in TASKS:
        raise unknown_name_error("circuit task", name, sorted(TASKS))
    return TASKS[name](tokenizer, n, seed)


# ------------------------------------------------------------------ training language
def _sentence(rng: np.random.Generator) -> list[str]:
    """One plain sentence: det (adj) noun verb det (adj) noun (prep det noun) ."""

    def np_() -> list[str]:
        words = [str(rng.choice(DETS))]
        if rng.random() < 0.5:
            words.append(str(rng.choice(ADJS)))
        return words + [str(rng.choice(NOUNS))]

    out = np_() + [str(rng.choice(TVERBS))] + np_()
    if rng.random() < 0.4:
        out += [str(rng.choice(PREPS))] + np_()
    return out + ["."]


def _ioi_segment(rng: np.random.Generator) -> list[str]:
    io, s = rng.choice(NAMES, size=2, replace=False).tolist()
    a, b = (io, s) if rng.random() < 0.5 else (s, io)
    text = IOI_TEMPLATE.format(
        A=a, B=b, S=s, place=rng.choice(PLACES), verb=rng.choice(VERBS), obj=rng.choice(OBJECTS)
    )
    return text.split() + [io, "."]


def _induction_segment(rng: np.random.Generator) -> list[str]:
    L = int(rng.integers(6, 13))
    seq = rng.choice(SYMBOLS, size=L, replace=False).tolist()
    return seq + seq + ["."]


SEGMENTS = {"ioi": _ioi_segment, "induction": _induction_segment, "sentence": _sentence}


def template_sequence(rng: np.random.Generator, n_words: int, mix: dict[str, float]) -> list[str]:
    """At least ``n_words`` words: task segments and plain sentences drawn by ``mix`` weights."""
    kinds = list(mix)
    p = np.array([mix[k] for k in kinds], dtype=float)
    p /= p.sum()
    words: list[str] = []
    while len(words) < n_words:
        words += SEGMENTS[kinds[rng.choice(len(kinds), p=p)]](rng)
    return words


def template_corpus(
    tokenizer, n_seq: int, n_ctx: int, seed: int, mix: dict[str, float]
) -> torch.Tensor:
    """``[n_seq, n_ctx]`` token ids of the template language (BOS first)."""
    rng = np.random.default_rng(seed)
    vocab = tokenizer.get_vocab()
    bos = tokenizer.bos_token_id
    rows = []
    for _ in range(n_seq):
        words = template_sequence(rng, n_ctx - 1, mix)[: n_ctx - 1]
        rows.append([bos] + [vocab[w] for w in words])
    return torch.tensor(rows, dtype=torch.long)
