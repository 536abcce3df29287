"""A sentiment dataset generated offline: movie-review-like text written by this project.

It exists so the whole workflow runs without the Hugging Face Hub. Reviews are built
from sentence templates with positive, negative and neutral phrases, including negated
phrases ("nobody will feel cheated"), so a model has to learn more than single words.
The ``imdb`` length profile mimics IMDb's review lengths (median ~230 tokens, a long
tail past 512) for throughput benchmarks.
"""

from __future__ import annotations

import math
import random

LABEL_NAMES = ["NEGATIVE", "POSITIVE"]

SUBJECTS = ["the film", "the movie", "the cast", "the ending", "the script", "the soundtrack",
            "the final season", "the direction", "the lead actress", "the lead actor", "the story",
            "the finale", "the dialogue", "the camera work", "this series", "the last episode",
            "the pacing", "the second half", "the characters", "the production"]
AUDIENCES = ["fan", "viewer", "one", "reader of the books", "newcomer", "critic", "family", "lover of the genre"]
POSITIVE_ADJECTIVES = ["wonderful", "moving", "elegant", "brilliant", "gripping", "beautiful", "satisfying",
                       "heartfelt", "charming", "masterful", "graceful", "delightful", "superb", "touching",
                       "clever", "stunning", "memorable", "powerful", "warm", "excellent", "rewarding",
                       "thoughtful", "fresh", "funny", "lovely"]
NEGATIVE_ADJECTIVES = ["dull", "clumsy", "tedious", "boring", "lifeless", "disappointing", "messy",
                       "predictable", "shallow", "awful", "flat", "lazy", "forgettable", "painful",
                       "confusing", "hollow", "weak", "terrible", "bland", "pointless", "stiff", "cheap",
                       "sloppy", "tiresome", "empty"]
POSITIVE_NOUNS = ["elegance", "grace", "charm", "warmth", "heart", "wit", "craft", "beauty", "depth",
                  "honesty", "confidence", "care"]
NEGATIVE_NOUNS = ["mess", "disaster", "bore", "letdown", "chore", "waste of time", "failure", "slog"]
BAD_FEELINGS = ["cheated", "bored", "disappointed", "short-changed", "let down", "robbed", "annoyed"]
GOOD_FEELINGS = ["moved", "satisfied", "entertained", "delighted", "thrilled", "grateful", "uplifted"]
VERBS = ["watch", "sit through it", "see it", "finish it", "stay until the end", "follow it"]

POSITIVE_TEMPLATES = [
    "{Subject} is {pos} and {pos}.",
    "I found {subject} truly {pos}.",
    "There is real {pnoun} in the way {subject} unfolds.",
    "{Subject} has so much {pnoun} that it never drags.",
    "No {audience} is going to {verb} and feel {bad}.",
    "Nobody will walk away feeling {bad}.",
    "I was never {bad} for a moment.",
    "I left feeling {good}.",
    "It is hard not to feel {good} by {subject}.",
    "What a {pos} piece of work.",
    "Every {audience} should {verb}; it is {pos}.",
    "{Subject} is anything but {neg}.",
    "It ends with {pnoun} and a {pos} final scene.",
    "I would happily {verb} again.",
    "Not a single scene feels {neg}.",
]
NEGATIVE_TEMPLATES = [
    "{Subject} is {neg} and {neg}.",
    "I found {subject} truly {neg}.",
    "{Subject} is a {nnoun} from start to finish.",
    "Every {audience} is going to {verb} and feel {bad}.",
    "I felt {bad} by the end.",
    "I left feeling {bad}.",
    "It is hard to feel {good} by {subject}.",
    "What a {neg} piece of work.",
    "No {audience} should {verb}; it is {neg}.",
    "{Subject} is anything but {pos}.",
    "There is no {pnoun} anywhere in {subject}.",
    "It ends as a {nnoun} with a {neg} final scene.",
    "I would never {verb} again.",
    "Not a single scene feels {pos}.",
    "{Subject} lacks any {pnoun}.",
]
NEUTRAL_SENTENCES = [
    "I watched it over a long weekend.",
    "The story follows a family in a small coastal town.",
    "It runs a little over two hours.",
    "The series is based on a novel from the nineties.",
    "Most of it was filmed on location.",
    "I went in knowing very little about it.",
    "The plot covers three generations.",
    "It is the third season of the show.",
    "My friends recommended it to me.",
    "The last scene takes place in an old theatre.",
    "The music was written by a newcomer.",
    "The first act introduces a lot of characters.",
]


def _fill(template: str, rng: random.Random) -> str:
    subject = rng.choice(SUBJECTS)
    text = template.format(
        Subject=subject[0].upper() + subject[1:], subject=subject, audience=rng.choice(AUDIENCES),
        pos=rng.choice(POSITIVE_ADJECTIVES), neg=rng.choice(NEGATIVE_ADJECTIVES),
        pnoun=rng.choice(POSITIVE_NOUNS), nnoun=rng.choice(NEGATIVE_NOUNS), bad=rng.choice(BAD_FEELINGS),
        good=rng.choice(GOOD_FEELINGS), verb=rng.choice(VERBS),
    )
    return text


def _sentence_count(rng: random.Random, profile: str) -> int:
    if profile == "imdb":
        # IMDb reviews: median ~230 tokens, ~13 tokens a sentence here, long right tail.
        return max(2, min(80, int(round(math.exp(rng.gauss(math.log(17), 0.7))))))
    return rng.randint(1, 4)


def generate_review(label: int, rng: random.Random, profile: str = "short") -> str:
    """One review whose overall sentiment is ``label`` (0 negative, 1 positive)."""
    own, other = (POSITIVE_TEMPLATES, NEGATIVE_TEMPLATES) if label == 1 else (NEGATIVE_TEMPLATES,
                                                                                POSITIVE_TEMPLATES)
    n = _sentence_count(rng, profile)
    sentences = [_fill(rng.choice(own), rng)]
    for _ in range(n - 1):
        roll = rng.random()
        if roll < 0.55:
            sentences.append(_fill(rng.choice(own), rng))
        elif roll < 0.9 or n < 4:
            sentences.append(rng.choice(NEUTRAL_SENTENCES))
        else:  # a mixed review still leans one way
            sentences.append(_fill(rng.choice(other), rng))
    rng.shuffle(sentences)
    return " ".join(sentences)


def generate_records(n: int, seed: int, profile: str = "short") -> list[dict[str, object]]:
    """``n`` balanced records ``{"text": str, "label": int}``, reproducible from ``seed``."""
    rng = random.Random(seed)
    return [{"text": generate_review(i % 2, rng, profile), "label": i % 2} for i in range(n)]


def vocabulary() -> list[str]:
    """Every lower-case word the generator can emit (for building a tiny tokenizer)."""
    words: set[str] = set()
    pieces = (SUBJECTS + AUDIENCES + POSITIVE_ADJECTIVES + NEGATIVE_ADJECTIVES + POSITIVE_NOUNS
              + NEGATIVE_NOUNS + BAD_FEELINGS + GOOD_FEELINGS + VERBS + POSITIVE_TEMPLATES
              + NEGATIVE_TEMPLATES + NEUTRAL_SENTENCES)
    for piece in pieces:
        for raw in piece.lower().replace("{", " ").replace("}", " ").split():
            word = "".join(ch for ch in raw if ch.isalpha())
            if word:
                words.add(word)
    return sorted(words)
