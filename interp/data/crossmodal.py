"""Synthetic visual question answering: 32x32 scenes of coloured shapes and templated questions.

A scene has 2-3 objects of distinct shapes (square, circle, triangle, cross) and random
colours, each drawn in an 8x8 box aligned to the 4x4 patch grid (so every object covers
exactly 4 patches and its patches are known). Questions come in six types mirroring
the GQA types of Zhang et al. (2024), each with a single-token answer:

=============  =============================================  ================
type           template                                       answers
=============  =============================================  ================
query_attr     what color is the circle ?                     a colour
choose_attr    is the circle red or blue ?                    one of the two
logical_obj    are there both a circle and a cross ?          yes / no
compare_attr   are the circle and the square the same color ?  yes / no
choose_rel     is the circle left or right of the square ?     left / right
choose_cat     is the red object a circle or a square ?        one of the two
=============  =============================================  ================

A training-only seventh type, ``choose_side`` ("is the circle left or right ?": which half of
the image the object is in), can be mixed into training sets (:data:`AUX_QUESTION_TYPES`).

Scenes are drawn from a seeded stream; the split is by scene (train scenes come from one
seed stream, test scenes from another and any test scene identical to a train scene is
dropped). Each question type has a fixed length, so a batch of one type needs no padding.

    data = make_vqa(n_train=2000, n_test=200, seed=0)
    data.test[0].question, data.test[0].answer, data.test[0].image.shape   # (32, 32, 3)
    tok = vqa_tokenizer()
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: generating data does not need torch
    import torch

IMAGE_SIZE = 32
PATCH = 4
GRID = IMAGE_SIZE // PATCH  # 8 patches per side -> 64 image tokens
N_PATCHES = GRID * GRID
OBJ = 8  # object box side in pixels (2x2 patches)
SLOTS = IMAGE_SIZE // OBJ  # 4x4 slots for objects

COLORS = {
    "red": (0.9, 0.1, 0.1),
    "green": (0.1, 0.8, 0.2),
    "blue": (0.15, 0.3, 0.95),
    "yellow": (0.95, 0.9, 0.1),
    "purple": (0.6, 0.15, 0.8),
    "white": (0.95, 0.95, 0.95),
}
SHAPES = ("square", "circle", "triangle", "cross")
BACKGROUND = (0.25, 0.25, 0.28)
QUESTION_TYPES = (
    "query_attr",
    "choose_attr",
    "logical_obj",
    "compare_attr",
    "choose_rel",
    "choose_cat",
)
# Training-only question types (never in test sets or analyses). choose_side asks which half
# of the image one object is in: it teaches the model to read where an object is, which
# choose_rel needs and which the six types alone never taught a CPU-sized model.
AUX_QUESTION_TYPES = ("choose_side",)
# Accuracy of guessing among the answers a question of each type allows (query_attr: any colour).
CHANCE = {
    "query_attr": 1 / 6,
    "choose_attr": 0.5,
    "logical_obj": 0.5,
    "compare_attr": 0.5,
    "choose_rel": 0.5,
    "choose_cat": 0.5,
}
IMAGE_TOKEN = "<image>"
FUNCTION_WORDS = (
    "what",
    "color",
    "is",
    "the",
    "?",
    "or",
    "there",
    "a",
    "are",
    "and",
    "same",
    "of",
    "object",
    "both",
    "yes",
    "no",
    "left",
    "right",
)


def vocabulary() -> list[str]:
    """Question and answer words (specials and the image placeholder come first in the
    tokenizer)."""
    return [IMAGE_TOKEN, *FUNCTION_WORDS, *COLORS, *SHAPES]


def answer_words() -> list[str]:
    return [*COLORS, *SHAPES, "yes", "no", "left", "right"]


def vqa_tokenizer():
    """Word-level tokenizer over :func:`vocabulary` (ids 0..4 are the specials, then
    ``<image>``)."""
    from interp.data.tokenizer import word_tokenizer

    return word_tokenizer(vocabulary())


def _shape_masks() -> dict[str, np.ndarray]:
    """8x8 masks. Each shape also has its own fill texture (solid, checkerboard, stripes), so
    every 4x4 patch of an object shows what shape it belongs to: a linear patch embedding
    of a tiny CPU-trained model cannot otherwise tell a disc's quadrant from a square's."""
    yy, xx = np.mgrid[0:OBJ, 0:OBJ] + 0.5
    c = OBJ / 2
    checker = ((np.mgrid[0:OBJ, 0:OBJ].sum(0)) % 2) == 0
    stripes = (np.mgrid[0:OBJ, 0:OBJ][0] % 2) == 0
    masks = {
        "square": np.ones((OBJ, OBJ), bool),
        "circle": ((yy - c) ** 2 + (xx - c) ** 2 <= (OBJ / 2) ** 2 * 0.95) & checker,
        "triangle": (yy >= 0.5) & (np.abs(xx - c) <= yy / 2 + 0.25) & stripes,
        "cross": (np.abs(yy - c) <= 1.0) | (np.abs(xx - c) <= 1.0),
    }
    return masks


_MASKS = _shape_masks()


@dataclass
class Obj:
    shape: str
    color: str
    slot: tuple[int, int]  # (row, col) on the 4x4 slot grid

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) in pixels, x1/y1 exclusive."""
        r, c = self.slot
        return (c * OBJ, r * OBJ, (c + 1) * OBJ, (r + 1) * OBJ)

    @property
    def patches(self) -> list[int]:
        """Indices (row-major on the 8x8 grid) of the 4 patches the object covers."""
        r, c = self.slot
        return [(2 * r + dr) * GRID + 2 * c + dc for dr in (0, 1) for dc in (0, 1)]


@dataclass
class Scene:
    objects: list[Obj]
    noise_seed: int

    def key(self) -> tuple:
        return tuple(sorted((o.shape, o.color, o.slot) for o in self.objects))

    def render(self, noise: float = 0.03) -> np.ndarray:
        """``[32, 32, 3]`` float32 image in [0, 1]."""
        img = np.empty((IMAGE_SIZE, IMAGE_SIZE, 3), np.float32)
        img[:] = BACKGROUND
        for o in self.objects:
            x0, y0, x1, y1 = o.box
            region = img[y0:y1, x0:x1]
            region[_MASKS[o.shape]] = COLORS[o.color]
        if noise:
            rng = np.random.default_rng(self.noise_seed)
            img = img + rng.normal(0, noise, img.shape).astype(np.float32)
        return np.clip(img, 0, 1).astype(np.float32)

    def object_patch_mask(self) -> np.ndarray:
        """``[64]`` bool: patches covered by any object's box."""
        m = np.zeros(N_PATCHES, bool)
        for o in self.objects:
            m[o.patches] = True
        return m

    def by_shape(self, shape: str) -> Obj | None:
        return next((o for o in self.objects if o.shape == shape), None)


@dataclass
class Sample:
    scene_id: int
    qtype: str
    question: str
    answer: str
    image: np.ndarray  # [32, 32, 3]
    object_patches: np.ndarray  # [64] bool: patches of the objects the question mentions
    all_object_patches: np.ndarray  # [64] bool: patches of every object
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    patch_shapes: np.ndarray = field(
        default_factory=lambda: np.full(N_PATCHES, -1)
    )  # [64] SHAPES index, -1 background


def random_scene(rng: np.random.Generator) -> Scene:
    n = int(rng.integers(2, 4))
    shapes = rng.choice(len(SHAPES), n, replace=False)
    colors = rng.integers(0, len(COLORS), n)
    slots = rng.choice(SLOTS * SLOTS, n, replace=False)
    names = list(COLORS)
    objs = [
        Obj(SHAPES[int(s)], names[int(c)], (int(p) // SLOTS, int(p) % SLOTS))
        for s, c, p in zip(shapes, colors, slots, strict=True)
    ]
    return Scene(objs, int(rng.integers(0, 2**31)))


def make_question(
    scene: Scene, qtype: str, rng: np.random.Generator
) -> tuple[str, str, list[Obj]] | None:
    """(question, answer, objects mentioned), or None when the scene cannot pose ``qtype``."""
    objs = scene.objects
    colors = list(COLORS)
    if qtype == "query_attr":
        o = objs[rng.integers(len(objs))]
        return f"what color is the {o.shape} ?", o.color, [o]
    if qtype == "choose_attr":
        o = objs[rng.integers(len(objs))]
        other = colors[rng.choice([i for i, c in enumerate(colors) if c != o.color])]
        a, b = (o.color, other) if rng.random() < 0.5 else (other, o.color)
        return f"is the {o.shape} {a} or {b} ?", o.color, [o]
    if qtype == "logical_obj":
        present = [o.shape for o in objs]
        absent = [s for s in SHAPES if s not in present]
        if rng.random() < 0.5:  # yes: both present
            s1, s2 = (str(x) for x in rng.choice(present, 2, replace=False))
            answer = "yes"
        else:  # no: at least one absent
            s1 = absent[rng.integers(len(absent))]
            s2 = SHAPES[rng.integers(len(SHAPES))]
            while s2 == s1:
                s2 = SHAPES[rng.integers(len(SHAPES))]
            answer = "no"
        if rng.random() < 0.5:
            s1, s2 = s2, s1
        mentioned = [o for o in objs if o.shape in (s1, s2)]
        return f"are there both a {s1} and a {s2} ?", answer, mentioned
    if qtype == "compare_attr":
        i, j = rng.choice(len(objs), 2, replace=False)
        o1, o2 = objs[int(i)], objs[int(j)]
        return (
            f"are the {o1.shape} and the {o2.shape} the same color ?",
            "yes" if o1.color == o2.color else "no",
            [o1, o2],
        )
    if qtype == "choose_rel":
        pairs = [(a, b) for a in objs for b in objs if a is not b and a.slot[1] != b.slot[1]]
        if not pairs:
            return None
        o1, o2 = pairs[rng.integers(len(pairs))]
        answer = "left" if o1.slot[1] < o2.slot[1] else "right"
        return f"is the {o1.shape} left or right of the {o2.shape} ?", answer, [o1, o2]
    if qtype == "choose_side":
        o = objs[rng.integers(len(objs))]
        return (
            f"is the {o.shape} left or right ?",
            "left" if o.slot[1] < SLOTS // 2 else "right",
            [o],
        )
    if qtype == "choose_cat":
        counts = {c: sum(o.color == c for o in objs) for c in colors}
        unique = [o for o in objs if counts[o.color] == 1]
        if not unique:
            return None
        o = unique[rng.integers(len(unique))]
        other = [s for s in SHAPES if s != o.shape][rng.integers(len(SHAPES) - 1)]
        a, b = (o.shape, other) if rng.random() < 0.5 else (other, o.shape)
        return f"is the {o.color} object a {a} or a {b} ?", o.shape, [o]
    raise ValueError(
        f"unknown question type {qtype!r}; choose from {QUESTION_TYPES + AUX_QUESTION_TYPES}"
    )


def _balanced_compare(scene: Scene, rng: np.random.Generator) -> Scene:
    """Make half of the scenes used for compare_attr have a same-coloured pair (else 'no'
    dominates)."""
    if rng.random() < 0.5 and len({o.color for o in scene.objects}) == len(scene.objects):
        a, b = rng.choice(len(scene.objects), 2, replace=False)
        scene.objects[int(b)].color = scene.objects[int(a)].color
    return scene


def sample_from_scene(
    scene: Scene, scene_id: int, qtype: str, rng: np.random.Generator, render: bool = True
) -> Sample | None:
    if qtype == "compare_attr":
        scene = Scene([Obj(o.shape, o.color, o.slot) for o in scene.objects], scene.noise_seed)
        scene = _balanced_compare(scene, rng)
    q = make_question(scene, qtype, rng)
    if q is None:
        return None
    question, answer, mentioned = q
    mask = np.zeros(N_PATCHES, bool)
    for o in mentioned:
        mask[o.patches] = True
    image = scene.render() if render else np.zeros((0, 0, 3), np.float32)
    labels = np.full(N_PATCHES, -1)
    for o in scene.objects:
        labels[o.patches] = SHAPES.index(o.shape)
    return Sample(
        scene_id,
        qtype,
        question,
        answer,
        image,
        mask,
        scene.object_patch_mask(),
        [o.box for o in scene.objects],
        labels,
    )


@dataclass
class VQAData:
    train: list[Sample]
    test: list[Sample]
    train_scene_keys: set


def scene_stream(seed: int, split: str) -> Iterable[tuple[int, Scene]]:
    """Endless seeded stream of (scene id, scene); ``split`` picks an independent stream."""
    offset = {"train": 0, "test": 1}[split]
    rng = np.random.default_rng([seed, offset, 7919])
    i = 0
    while True:
        yield i, random_scene(rng)
        i += 1


def make_samples(
    n: int,
    seed: int,
    split: str,
    qtypes: Sequence[str] = QUESTION_TYPES,
    exclude: set | None = None,
    questions_per_scene: int = 2,
    render: bool = True,
) -> tuple[list[Sample], set]:
    """``n`` samples from scenes of one split (balanced over ``qtypes``); also the scene keys
    used."""
    rng = np.random.default_rng([seed, {"train": 0, "test": 1}[split], 104729])
    out: list[Sample] = []
    keys = set()
    k = 0
    for sid, scene in scene_stream(seed, split):
        if len(out) >= n:
            break
        if exclude is not None and scene.key() in exclude:
            continue
        keys.add(scene.key())
        for _ in range(questions_per_scene):
            qtype = qtypes[k % len(qtypes)]
            k += 1
            s = sample_from_scene(scene, sid, qtype, rng, render=render)
            if s is not None and len(out) < n:
                out.append(s)
    return out, keys


def make_vqa(
    n_train: int = 2000,
    n_test: int = 300,
    seed: int = 0,
    qtypes: Sequence[str] = QUESTION_TYPES,
    train_extra: Sequence[str] = (),
) -> VQAData:
    """Train and test samples on disjoint scenes; ``train_extra`` adds training-only question
    types (:data:`AUX_QUESTION_TYPES`) to the training mixture."""
    train, keys = make_samples(n_train, seed, "train", (*qtypes, *train_extra))
    test, _ = make_samples(n_test, seed, "test", qtypes, exclude=keys)
    return VQAData(train, test, keys)


def train_scene_keys(n_train: int, seed: int, qtypes: Sequence[str] = QUESTION_TYPES) -> set:
    """Scene keys of the training set ``make_vqa(n_train, ..., seed)`` draws (no rendering)."""
    return make_samples(n_train, seed, "train", qtypes, render=False)[1]


def patchify(images: np.ndarray) -> np.ndarray:
    """``[batch, 32, 32, 3]`` -> ``[batch, 64, 48]`` (row-major 4x4 patches, channels last)."""
    b = images.shape[0]
    x = images.reshape(b, GRID, PATCH, GRID, PATCH, 3).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, N_PATCHES, PATCH * PATCH * 3)


def question_ids(tokenizer, question: str) -> list[int]:
    ids = tokenizer.encode(question, add_special_tokens=False)
    unk = tokenizer.unk_token_id
    if unk in ids:
        raise ValueError(f"question has out-of-vocabulary words: {question!r}")
    return ids


def encode(tokenizer, samples: Sequence[Sample]) -> dict:
    """Batch tensors for the VLM: ``tokens`` [B, 1+64+Q] (BOS, 64 ``<image>`` placeholders,
    question, right-padded), ``pixels`` [B, 64, 48], ``last`` [B] (index of the last question
    token), ``answer`` [B] (answer token id)."""
    import torch

    img_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    qs = [question_ids(tokenizer, s.question) for s in samples]
    width = 1 + N_PATCHES + max(len(q) for q in qs)
    tokens = torch.full((len(samples), width), tokenizer.pad_token_id, dtype=torch.long)
    tokens[:, 0] = tokenizer.bos_token_id
    tokens[:, 1 : 1 + N_PATCHES] = img_id
    for i, q in enumerate(qs):
        tokens[i, 1 + N_PATCHES : 1 + N_PATCHES + len(q)] = torch.tensor(q)
    last = torch.tensor([N_PATCHES + len(q) for q in qs])
    answer = torch.tensor([tokenizer.convert_tokens_to_ids(s.answer) for s in samples])
    pixels = torch.from_numpy(patchify(np.stack([s.image for s in samples])))
    shape_ids = torch.tensor([tokenizer.convert_tokens_to_ids(w) for w in SHAPES] + [-100])
    patch_shape = shape_ids[
        torch.from_numpy(np.stack([s.patch_shapes for s in samples]))
    ]  # -1 -> -100
    return {
        "tokens": tokens,
        "pixels": pixels,
        "last": last,
        "answer": answer,
        "patch_shape": patch_shape,
    }


def size_matched_patches(object_patches: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``[B, 64]`` bool: for each row of ``object_patches`` ``[B, 64]``, a uniformly random set of
    as many image patches (drawn from all 64, so it may overlap the objects): the control the
    object patches are compared with (more patches cut means more lost, whatever they show)."""
    out = np.zeros(object_patches.shape, bool)
    for i, n in enumerate(object_patches.sum(1)):
        out[i, rng.choice(N_PATCHES, int(n), replace=False)] = True
    return out


def position_groups(
    batch: dict, samples, rng: np.random.Generator | None = None
) -> dict[str, torch.Tensor]:
    """``[B, T]`` bool position groups of one :func:`encode` batch of equal-length questions:
    ``image`` (the 64 patches), ``question`` (every question token but the last), ``last`` (the
    final position), ``all``, ``object`` (patches of the objects the question mentions) and
    ``nonobject`` (every other patch). With ``rng`` also ``random`` (a random patch set of the
    size of ``object``, :func:`size_matched_patches`) and ``nonrandom`` (the other patches, the
    size of ``nonobject``)."""
    import torch

    tokens = batch["tokens"]
    B, T = tokens.shape
    if not bool((batch["last"] == T - 1).all()):
        raise ValueError(
            "position_groups needs questions of one length (last token at the final position)"
        )
    pos = torch.arange(T)[None].expand(B, T)
    image = (pos >= 1) & (pos < 1 + N_PATCHES)
    last = pos == T - 1
    question = (pos >= 1 + N_PATCHES) & ~last

    def on_image(patches: np.ndarray) -> torch.Tensor:  # [B, 64] -> [B, T]
        g = torch.zeros(B, T, dtype=torch.bool)
        g[:, 1 : 1 + N_PATCHES] = torch.from_numpy(patches)
        return g

    objects = np.stack([s.object_patches for s in samples])
    obj = on_image(objects)
    groups = {
        "image": image,
        "question": question,
        "last": last,
        "all": pos <= T - 1,
        "object": obj,
        "nonobject": image & ~obj,
    }
    if rng is not None:
        rand = on_image(size_matched_patches(objects, rng))
        groups.update({"random": rand, "nonrandom": image & ~rand})
    return groups
