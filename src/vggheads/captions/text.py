"""Caption rules: is it about people, does it name a person, how many people, near-duplicates, rewrite.

All rules are plain functions of a caption string so each can be tested alone. The paper used
GLiNER for names; without a model the built-in rules (a given-name list, honorifics, capitalised
name pairs) stand in, and `captions.ner_model` plugs in a local Hugging Face NER model.
"""

from __future__ import annotations

import re
import zlib
from functools import lru_cache
from importlib import resources

import numpy as np

# Person nouns (singular and plural) whose presence makes a caption "about people".
PERSON_NOUNS = {
    "man", "men", "woman", "women", "person", "persons", "people", "boy", "boys", "girl", "girls", "child",
    "children", "kid", "kids", "baby", "babies", "toddler", "toddlers", "teen", "teens", "teenager", "teenagers",
    "lady", "ladies", "gentleman", "gentlemen", "guy", "guys", "couple", "couples", "family", "families",
    "friends", "crowd", "bride", "groom", "mother", "father", "mom", "dad", "daughter", "son", "sister", "brother",
    "grandmother", "grandfather", "grandma", "grandpa", "student", "students", "worker", "workers", "doctor",
    "doctors", "nurse", "nurses", "businessman", "businessmen", "businesswoman", "businesswomen", "athlete",
    "athletes", "player", "players", "soldier", "soldiers", "dancer", "dancers", "musician", "musicians",
    "singer", "singers", "tourists", "farmer", "farmers", "chef", "chefs",
    "teacher", "teachers", "officer", "officers", "actor", "actress", "mum", "wife", "husband", "adult", "adults",
    "elderly", "audience", "pedestrians", "passengers", "spectators", "researcher", "researchers",
    "selfie", "headshot", "male", "female", "males", "females", "policeman", "policemen", "fisherman",
    "fishermen", "surfer", "surfers", "runner", "runners", "cyclist", "cyclists", "climber", "hiker", "hikers",
}
# Product words: a caption naming people only as the target group of a product ("Women's jacket",
# "t-shirt for men") describes an object, not a person.
PRODUCT_WORDS = {
    "shirt", "t-shirt", "tshirt", "tee", "tank", "top", "jacket", "coat", "sweater", "sweatshirt", "hoodie",
    "dress", "skirt", "pants", "jeans", "shorts", "shoes", "shoe", "sneakers", "trainers", "boots", "sandals",
    "socks", "hat", "cap", "bag", "tote", "wallet", "watch", "ring", "necklace", "costume", "pajama", "pajamas",
    "doll", "toy", "toys", "book", "workbook", "invitation", "poster", "sticker", "mug", "cover", "case",
    "album", "clips", "trampoline", "vector", "clipart", "illustration", "logo", "icon", "cartoon", "font",
    "coloring", "colouring", "printable", "template", "wallpaper", "dvd", "game", "blazer", "fleece",
    "crewneck", "uniform", "swimsuit", "bikini", "underwear", "bra", "perfume", "haircuts", "hairstyles",
    "gloves", "glove", "boot", "earrings", "jewelry", "jewellery", "handkerchiefs", "scarf", "pant", "magnet",
    "favours", "favors", "gift", "gifts", "bags", "canvas", "form", "chart", "training", "resume", "samples",
    "tents", "seats", "pdf", "recipes", "kit", "helmet", "backpack", "stroller", "crib", "furniture", "print",
    "prints", "decal", "pattern", "sewing", "knitting-pattern", "fabric", "insulated", "bottle", "3d",
}
# Text that marks a caption as not safe for work even without an NSFW column.
NSFW_WORDS = {"fuck", "fucking", "fucked", "porn", "porno", "nude", "nudes", "naked", "sex", "sexy", "xxx",
              "slave", "slavehold", "domina", "fetish", "erotic", "topless", "nsfw", "hentai", "milf", "boobs"}
# Capitalised words common in captions that are not names.
NOT_NAMES = {"stock", "photo", "photos", "images", "image", "photography", "royalty", "free", "premium", "vector",
             "illustration", "picture", "pictures", "the", "new", "young", "old", "happy", "smiling", "portrait",
             "beautiful", "little", "close", "closeup", "getty", "shutterstock", "alamy", "istock", "ap", "reuters"}
# Given names that are also common words: a name only when a capitalised surname follows.
AMBIGUOUS_NAMES = {"rose", "lily", "will", "mark", "bill", "grace", "joy", "max", "ray", "jack", "amber", "crystal",
                   "ruby", "violet", "iris", "holly", "april", "dale", "dean", "don", "faith", "hope", "june", "pat",
                   "rob", "sue", "summer", "willow", "angel", "daisy", "jade", "lady", "king", "victoria", "georgia",
                   "paris", "chase", "hunter", "miles", "frank", "gene", "art", "drake", "chad", "sky"}
POSSESSIVE_PERSON = re.compile(r"\b(?:wo)?men(?:'s|s)\b|\b(?:kids|boys|girls|ladies|children)'s?", re.IGNORECASE)
HONORIFICS = re.compile(r"\b(?:mr|mrs|ms|miss|dr|prof|sir|dame|lord|gov|sen|rep|pres|president|prince|princess|"
                        r"king|queen|pope|saint|st|capt|gen|col|coach)\.?\s+[A-Z][a-z]+", re.UNICODE)
WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")
COUNT_WORDS = {"one": 1, "a": 1, "an": 1, "single": 1, "lone": 1, "two": 2, "pair": 2, "couple": 2, "both": 2,
               "twins": 2, "three": 3, "trio": 3, "four": 4, "quartet": 4, "five": 5, "six": 6, "seven": 7,
               "eight": 8, "nine": 9, "ten": 10}
GROUP_WORDS = {"group": (3, 6), "crowd": (5, 8), "team": (4, 7), "family": (3, 5), "families": (4, 7),
               "friends": (2, 4), "people": (2, 5), "men": (2, 4), "women": (2, 4), "children": (2, 4),
               "kids": (2, 4), "students": (3, 6), "audience": (5, 8), "couple": (2, 2)}
DETERMINERS = {"a", "an", "the", "this", "that", "these", "those", "his", "her", "their", "our", "my", "some",
               "many", "several", "young", "old", "elderly", "little", "smiling", "happy"}
REWRITE_WORDS = re.compile(r"\b(male|female|person|man|woman|people|men|women|persons)\b", re.IGNORECASE)
ETHNICITIES = ["African", "Asian", "Caucasian", "Hispanic", "Indian", "Middle Eastern", "East Asian",
               "South Asian", "Southeast Asian", "Latino", "Black", "White", "Native American", "Pacific Islander"]


@lru_cache(maxsize=1)
def first_names() -> frozenset[str]:
    text = resources.files(__package__).joinpath("first_names.txt").read_text()
    return frozenset(w for line in text.splitlines() if not line.startswith("#") for w in line.split())


def words(caption: str) -> list[str]:
    return WORD.findall(caption)


def is_nsfw_text(caption: str) -> bool:
    return any(w.lower() in NSFW_WORDS for w in words(caption))


def is_about_people(caption: str) -> bool:
    """True when a person noun occurs as a depicted person, not only as a product's target group."""
    stripped = POSSESSIVE_PERSON.sub(" ", caption)  # "Women's jacket", "Mens T-Shirt"
    tokens = [w.lower() for w in words(stripped)]
    # "Programmed Word Attack for Teachers", "keep the kids happy": audiences, not subjects.
    depicted = [i for i, t in enumerate(tokens) if t in PERSON_NOUNS and (i == 0 or tokens[i - 1] not in ("for", "keep"))]
    if not depicted:
        return False
    if any(t in PRODUCT_WORDS for t in tokens):
        # With product words around, only a described person counts: "a young girl reading a book",
        # not "Kids Birthday Invitation".
        determiners = DETERMINERS | set(COUNT_WORDS)
        return any(tok in determiners for i in depicted for tok in tokens[max(0, i - 3):i])
    return True


def _is_title_case(tokens: list[str]) -> bool:
    long = [t for t in tokens if len(t) > 3]
    return bool(long) and sum(t[0].isupper() for t in long) / len(long) > 0.6


def names_person(caption: str) -> bool:
    """True when the caption names a person (honorific + name, a given name, or a Name Surname pair)."""
    if HONORIFICS.search(caption):
        return True
    tokens = words(caption)
    names = first_names()
    title_case = _is_title_case(tokens)
    for i, tok in enumerate(tokens):
        if not tok[0].isupper():
            continue
        low = tok.lower().removesuffix("'s")
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if low in names and (low not in AMBIGUOUS_NAMES or (nxt[:1].isupper() and not title_case)):
            return True
        # "... for the crowd, said Franklin Reyes": a capitalised pair in an otherwise lower-case caption.
        if (not title_case and nxt[:1].isupper() and len(tok) > 2 and len(nxt) > 2
                and not {low, nxt.lower()} & (PERSON_NOUNS | NOT_NAMES)
                and (i == 0 or tokens[i - 1][:1].islower())):
            return True
    return False


def person_count(caption: str, rng: np.random.Generator, max_persons: int) -> int:
    """How many people to draw: stated in the caption when it says so, otherwise sampled."""
    tokens = [w.lower() for w in words(caption)]
    for i, tok in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if tok in COUNT_WORDS and tok not in ("a", "an") and (nxt in PERSON_NOUNS or tok in ("couple", "pair", "twins", "trio")):
            return min(COUNT_WORDS[tok], max_persons)
        if tok.isdigit() and nxt in PERSON_NOUNS:
            return max(1, min(int(tok), max_persons))
    for tok in tokens:
        if tok in GROUP_WORDS:
            lo, hi = GROUP_WORDS[tok]
            return int(rng.integers(min(lo, max_persons), min(hi, max_persons) + 1))
    for i, tok in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if tok in ("a", "an") and nxt in PERSON_NOUNS:
            return 1
    # Unstated: mostly few people, sometimes more (the paper's images hold 2.2 heads on average).
    weights = np.array([0.35, 0.3, 0.2, 0.1, 0.05][:max_persons] + [0.02] * max(0, max_persons - 5))
    return int(rng.choice(np.arange(1, max_persons + 1), p=weights / weights.sum()))


def normalise(caption: str) -> str:
    return " ".join(w.lower() for w in words(caption))


def shingles(caption: str, k: int = 3) -> set[str]:
    toks = normalise(caption).split()
    if len(toks) < k:
        return {" ".join(toks)}
    return {" ".join(toks[i:i + k]) for i in range(len(toks) - k + 1)}


class NearDuplicates:
    """Streaming near-duplicate finder: MinHash LSH over word 3-shingles, verified by exact Jaccard.

    ``seen(caption)`` returns True when an earlier caption had Jaccard similarity >= threshold
    (first occurrence wins), otherwise remembers it. Deterministic (crc32-based hashing).
    """

    def __init__(self, threshold: float, n_hashes: int = 32, bands: int = 8):
        self.threshold = threshold
        self.rows = n_hashes // bands
        self.bands = bands
        rng = np.random.default_rng(1234)
        self._a = rng.integers(1, 2**31 - 1, n_hashes, dtype=np.uint64)
        self._b = rng.integers(0, 2**31 - 1, n_hashes, dtype=np.uint64)
        self._buckets: list[dict] = [dict() for _ in range(bands)]
        self._sets: list[set[str]] = []
        self._exact: dict[str, int] = {}

    def _signature(self, sh: set[str]) -> np.ndarray:
        h = np.fromiter((zlib.crc32(s.encode()) for s in sh), dtype=np.uint64, count=len(sh))
        return ((h[None, :] * self._a[:, None] + self._b[:, None]) % np.uint64(2**31 - 1)).min(axis=1)

    def seen(self, caption: str) -> bool:
        key = normalise(caption)
        if key in self._exact:
            return True
        sh = shingles(caption)
        if self.threshold < 1.0:
            sig = self._signature(sh)
            keys = [sig[b * self.rows:(b + 1) * self.rows].tobytes() for b in range(self.bands)]
            candidates = {i for b, k in enumerate(keys) for i in self._buckets[b].get(k, ())}
            for i in candidates:
                other = self._sets[i]
                if len(sh & other) / len(sh | other) >= self.threshold:
                    return True
        idx = len(self._sets)
        self._sets.append(sh)
        self._exact[key] = idx
        if self.threshold < 1.0:
            for b, k in enumerate(keys):
                self._buckets[b].setdefault(k, []).append(idx)
        return False


def rewrite_prompt(caption: str, rng: np.random.Generator, diversity_p: float, highres_p: float) -> str:
    """The paper's prompt rewrite: ethnicity-qualified person words (p=0.8) and ", ultra highres" (p=0.5)."""
    prompt = " ".join(caption.split())
    if rng.random() < diversity_p:
        def qualify(match: re.Match) -> str:
            return f"{ETHNICITIES[int(rng.integers(len(ETHNICITIES)))].lower()} {match.group(0)}"

        prompt = REWRITE_WORDS.sub(qualify, prompt)
    if rng.random() < highres_p:
        prompt += ", ultra highres"
    return prompt
