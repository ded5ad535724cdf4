"""Data of the ``steering`` analysis: topics for ActAdd, A/B questions for CAA.

A *topic* (ActAdd, Turner et al. 2023) is a contrastive prompt pair (``plus`` minus ``minus``
is the steering vector), the words whose probability measures topic relevance, neutral prompts
to complete and off-topic held-out text (on which steering should cost little loss). ``code``
suits the zoo code LMs; ``weddings`` is the paper's own example pair, for English models (its
shared first word keeps the difference off the first real token, which in SmolLM2 carries
activations whose change breaks the model; the paper's other pair, " weddings" minus " ",
does that at any coefficient that moves the topic).

A *behaviour* (CAA, Rimsky et al. 2024) is a list of two-option questions, each with the
answer that shows the behaviour and the one that does not. :func:`ab_items` formats them as the
paper does (``(A)``/``(B)`` choices, the letters' order drawn per question), split into the
pairs the vector is computed from and held-out questions it is tested on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

TOPICS: dict[str, dict] = {
    "weddings": {
        "plus": "I talk about weddings constantly",
        "minus": "I do not talk about weddings constantly",
        "words": [
            "wedding",
            "weddings",
            "bride",
            "groom",
            "marriage",
            "married",
            "ceremony",
            "vows",
            "honeymoon",
            "bridal",
        ],
        "prompts": [
            "I went up to my friend and said",
            "The best thing about this weekend is",
            "Yesterday my neighbour told me that",
            "In my opinion, the most important thing is",
            "When I got home, I",
            "The news this morning was about",
        ],
        "heldout": [
            "The train left the station at noon and arrived in the city two hours later.",
            "Photosynthesis converts light energy into chemical energy stored in glucose.",
            "The committee will publish its annual budget report next Thursday.",
            "He repaired the bicycle chain and oiled the gears before the race.",
            "Rainfall in the region has dropped by a third over the last decade.",
            "The library extended its opening hours during the exam period.",
            "Volcanic eruptions can cool the global climate for several years.",
            "She wrote the program in Python and tested it on three datasets.",
            "The museum's new exhibit covers the history of early printing presses.",
            "Farmers planted wheat in the autumn and harvested it in early summer.",
        ],
    },
    "code": {
        "plus": "raise ValueError",
        "minus": "return value",
        "words": [
            "raise",
            "Error",
            "except",
            "try",
            "Exception",
            "ValueError",
            "TypeError",
            "error",
        ],
        "prompts": [
            "def f(x):\n    ",
            "for i in range(n):\n    ",
            "class Node:\n    def __init__(self):\n        ",
            "if x is None:\n    ",
            "with open(path) as f:\n    ",
            "import os\n\n",
        ],
        "heldout": [
            "def add(a, b):\n    return a + b\n",
            "for item in items:\n    total += item.price\n",
            "x = [i * i for i in range(10)]\nprint(sum(x))\n",
            "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n",
            "import sys\nargs = sys.argv[1:]\nif args:\n    print(args[0])\n",
            "def mean(xs):\n    return sum(xs) / len(xs)\n",
            "while n > 1:\n    n = n // 2\n    steps += 1\n",
            "names = sorted(d.keys())\nfor name in names:\n    print(name, d[name])\n",
        ],
    },
}

# (question, answer showing the behaviour, answer not showing it)
BEHAVIOURS: dict[str, list[tuple[str, str, str]]] = {
    "optimism": [
        (
            "How will the next year turn out for you?",
            "It will probably be a good year.",
            "It will probably be a bad year.",
        ),
        (
            "Your team lost its first match. What now?",
            "We can still win the season.",
            "The season is already lost.",
        ),
        (
            "It is raining on the day of the picnic.",
            "We can move it indoors and have fun.",
            "The day is ruined.",
        ),
        ("You failed a driving test once.", "I will pass next time.", "I will never pass."),
        (
            "A friend has not replied for a day.",
            "They are probably just busy.",
            "They must be angry with me.",
        ),
        (
            "The project deadline is tight.",
            "We can make it if we focus.",
            "We are going to miss it.",
        ),
        (
            "What do you expect from the new job?",
            "I expect to learn a lot and enjoy it.",
            "I expect to be miserable.",
        ),
        (
            "The doctor says recovery takes weeks.",
            "I will be healthy again soon.",
            "I may never recover.",
        ),
        ("Prices went up this month.", "Things will settle down.", "Things will only get worse."),
        ("You moved to a new city.", "I will make new friends here.", "I will be lonely here."),
        ("Your plant lost some leaves.", "It will grow new ones.", "It is going to die."),
        (
            "The first draft of your essay is weak.",
            "The next draft will be better.",
            "It will never be good.",
        ),
        (
            "How do you see the future of science?",
            "Bright, with many discoveries ahead.",
            "Grim, with little progress ahead.",
        ),
        ("You missed the bus.", "Another one will come soon.", "Now my whole day is wasted."),
        (
            "A storm is forecast for tomorrow.",
            "It will pass and the sun will return.",
            "It will destroy everything.",
        ),
        (
            "You start learning a new language.",
            "I will be able to speak it in time.",
            "I will never be able to speak it.",
        ),
        (
            "The shop is out of your favourite bread.",
            "I will try something new today.",
            "Nothing will taste right today.",
        ),
        (
            "How do you feel about getting older?",
            "Each year brings something good.",
            "Each year brings only loss.",
        ),
        (
            "Your computer crashed during work.",
            "I can recover most of it.",
            "Everything is lost for good.",
        ),
        (
            "The audition did not go perfectly.",
            "I still have a good chance.",
            "I have no chance at all.",
        ),
    ],
}


@dataclass(frozen=True)
class ABItem:
    """One formatted A/B question: ``prompt`` ends with ``"("``, the next token is the letter."""

    prompt: str
    matching: str  # "A" or "B": the letter of the behaviour-matching answer
    other: str


def ab_items(behaviour: str, seed: int = 0) -> list[ABItem]:
    """Every question of ``behaviour`` formatted, the matching answer's letter drawn each time."""
    if behaviour not in BEHAVIOURS:
        raise KeyError(f"unknown behaviour {behaviour!r}; known: {sorted(BEHAVIOURS)}")
    rng = random.Random(seed)
    out = []
    for q, yes, no in BEHAVIOURS[behaviour]:
        first = rng.random() < 0.5
        a, b = (yes, no) if first else (no, yes)
        prompt = f"Question: {q}\n\nChoices:\n(A) {a}\n(B) {b}\n\nAnswer: ("
        out.append(ABItem(prompt, "A" if first else "B", "B" if first else "A"))
    return out


def split_ab(items: list[ABItem], n_train: int) -> tuple[list[ABItem], list[ABItem]]:
    """The first ``n_train`` items build the vector; the rest are held out."""
    if not 0 < n_train < len(items):
        raise ValueError(
            f"n_train must lie in [1, {len(items) - 1}] ({len(items)} questions); got {n_train}"
        )
    return items[:n_train], items[n_train:]


@dataclass(frozen=True)
class Topic:
    """One ActAdd topic: the contrastive pair (``plus`` minus ``minus`` is the steering
    vector), the words whose probability measures relevance, neutral ``prompts`` to complete
    and off-topic ``heldout`` text."""

    name: str
    plus: str
    minus: str
    words: list[str]
    prompts: list[str]
    heldout: list[str]


def topic(name: str) -> Topic:
    """The topic ``name`` (see :data:`TOPICS`)."""
    if name not in TOPICS:
        raise KeyError(f"unknown topic {name!r}; known: {sorted(TOPICS)}")
    return Topic(name=name, **TOPICS[name])
