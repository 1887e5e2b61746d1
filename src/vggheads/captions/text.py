"""Caption rules: is it about people, does it name a person, how many people, near-duplicates, rewrite.

All rules are plain functions of a caption string so each can be tested alone. The paper used
GLiNER for names; `vggheads.captions.names` runs a real NER model (spaCy's small English pipeline by
default, GLiNER or a Hugging Face token-classifier when given) next to the built-in rules here (a
given-name list, honorifics, capitalised name pairs). Words are Unicode words: "Nenê", "Zoë" and
"café" are words like any other.
"""

from __future__ import annotations

import re
import zlib
from functools import lru_cache
from importlib import resources

import numpy as np

# Person nouns (singular and plural) whose presence makes a caption "about people".
PERSON_NOUNS = {
    "man",
    "men",
    "woman",
    "women",
    "person",
    "persons",
    "people",
    "boy",
    "boys",
    "girl",
    "girls",
    "child",
    "children",
    "kid",
    "kids",
    "baby",
    "babies",
    "toddler",
    "toddlers",
    "teen",
    "teens",
    "teenager",
    "teenagers",
    "lady",
    "ladies",
    "gentleman",
    "gentlemen",
    "guy",
    "guys",
    "couple",
    "couples",
    "family",
    "families",
    "friends",
    "crowd",
    "bride",
    "groom",
    "mother",
    "father",
    "mom",
    "dad",
    "daughter",
    "son",
    "sister",
    "brother",
    "grandmother",
    "grandfather",
    "grandma",
    "grandpa",
    "student",
    "students",
    "worker",
    "workers",
    "doctor",
    "doctors",
    "nurse",
    "nurses",
    "businessman",
    "businessmen",
    "businesswoman",
    "businesswomen",
    "athlete",
    "athletes",
    "player",
    "players",
    "soldier",
    "soldiers",
    "dancer",
    "dancers",
    "musician",
    "musicians",
    "singer",
    "singers",
    "tourists",
    "farmer",
    "farmers",
    "chef",
    "chefs",
    "teacher",
    "teachers",
    "officer",
    "officers",
    "actor",
    "actress",
    "mum",
    "wife",
    "husband",
    "adult",
    "adults",
    "elderly",
    "audience",
    "pedestrians",
    "passengers",
    "spectators",
    "researcher",
    "researchers",
    "selfie",
    "headshot",
    "male",
    "female",
    "males",
    "females",
    "policeman",
    "policemen",
    "fisherman",
    "fishermen",
    "surfer",
    "surfers",
    "runner",
    "runners",
    "cyclist",
    "cyclists",
    "climber",
    "hiker",
    "hikers",
    "groomsman",
    "groomsmen",
    "bridesmaid",
    "bridesmaids",
    "bestman",
    "newlyweds",
    "fiance",
    "fiancee",
    "boyfriend",
    "girlfriend",
    "locals",
    "tourist",
    "visitor",
    "visitors",
    "fan",
    "fans",
    "crowds",
    "spectator",
    "pupil",
    "pupils",
    "infant",
    "infants",
    "newborn",
    "youngster",
    "youngsters",
    "schoolgirl",
    "schoolboy",
    "schoolchildren",
    "grandparents",
    "parent",
    "parents",
    "uncle",
    "aunt",
    "cousin",
    "nephew",
    "niece",
    "twins",
    "politician",
    "politicians",
    "protester",
    "protesters",
    "demonstrators",
    "participants",
    "volunteers",
    "employee",
    "employees",
    "colleagues",
    "footballer",
    "footballers",
    "goalkeeper",
    "midfielder",
    "jockey",
    "skater",
    "skaters",
    "skier",
    "skiers",
    "swimmer",
    "swimmers",
    "wrestler",
    "gymnast",
    "ballerina",
    "actors",
    "actresses",
    "rapper",
    "drummer",
    "guitarist",
    "pianist",
    "bartender",
    "waiter",
    "waitress",
    "baker",
    "surgeon",
    "dentist",
    "scientist",
    "scientists",
    "engineer",
    "engineers",
    "professor",
    "firefighter",
    "firefighters",
    "fireman",
    "policewoman",
    "police",
    "troops",
    "nun",
    "monk",
    "monks",
    "priest",
    "bride",
    "brides",
    "grooms",
    "lovers",
    "model",
    "models",
    "celebrity",
    "celebrities",
    "entrepreneur",
    "entrepreneurs",
    "he",
    "she",
    "mannequin",
    "portraits",
    "self-portrait",
    "businesspeople",
    "gentlemen",
    "housewife",
    "housewives",
    # Occupations and roles (singular and plural; -ist, -man and -men words are listed, not guessed).
    "artist",
    "artists",
    "painter",
    "painters",
    "sculptor",
    "sculptors",
    "grocer",
    "grocers",
    "vendor",
    "vendors",
    "merchant",
    "merchants",
    "shopkeeper",
    "cashier",
    "clerk",
    "salesman",
    "saleswoman",
    "barber",
    "hairdresser",
    "tailor",
    "carpenter",
    "carpenters",
    "plumber",
    "electrician",
    "builders",
    "labourer",
    "labourers",
    "laborer",
    "laborers",
    "miner",
    "miners",
    "passenger",
    "commuter",
    "commuters",
    "traveler",
    "travelers",
    "traveller",
    "travellers",
    "backpacker",
    "backpackers",
    "camper",
    "campers",
    "climbers",
    "diver",
    "divers",
    "sailor",
    "sailors",
    "rancher",
    "cowboy",
    "cowboys",
    "cowgirl",
    "shepherd",
    "herder",
    "herders",
    "imam",
    "rabbi",
    "pastor",
    "preacher",
    "journalist",
    "journalists",
    "reporter",
    "reporters",
    "photographers",
    "writer",
    "poet",
    "architect",
    "lawyer",
    "lawyers",
    "guard",
    "guards",
    "guardsman",
    "guardsmen",
    "sheriff",
    "detective",
    "prisoner",
    "prisoners",
    "inmate",
    "inmates",
    "refugee",
    "refugees",
    "migrant",
    "migrants",
    "immigrants",
    "villager",
    "villagers",
    "gardener",
    "butcher",
    "hostess",
    "maid",
    "nanny",
    "babysitter",
    "housekeeper",
    "adolescent",
    "adolescents",
    "bridegroom",
    "widow",
    "orphan",
    "orphans",
    "warrior",
    "warriors",
    "champion",
    "champions",
    "medalist",
    "medalists",
    "medallist",
    "winner",
    "winners",
    "golfer",
    "golfers",
    "batsman",
    "skateboarder",
    "snowboarder",
    "jogger",
    "joggers",
    "performer",
    "performers",
    "violinist",
    "choir",
    "activist",
    "activists",
    "leader",
    "leaders",
    "delegates",
    "ambassador",
    "diplomat",
    "ceo",
    "executive",
    "executives",
    "manager",
    "managers",
    "coworkers",
    "intern",
    "interns",
    "patient",
    "patients",
    "paramedic",
    "paramedics",
    "graduate",
    "graduates",
    "classmates",
    "teammates",
    "neighbours",
    "neighbors",
    "guests",
    "residents",
    "citizens",
    "mourners",
    "worshippers",
    "pilgrims",
    "dude",
    "folks",
    "individual",
    "human",
    "humans",
    "blonde",
    "brunette",
    "redhead",
    "sportsman",
    "sportsmen",
    "sportswoman",
    "chairman",
    "chairwoman",
    "spokesman",
    "spokeswoman",
    "craftsman",
    "craftsmen",
    "fishermen",
    "horseman",
    "horsemen",
    "lineman",
    "cameraman",
    "postman",
    "milkman",
    "customer",
    "customers",
    "youth",
    "driver",
    "drivers",
    "rider",
    "riders",
    "pilot",
    "pilots",
    "host",
}
# Person nouns that are also common product or object words: "Trainer" shoes, a "Model" car, a
# "Driver" update, "Youth" gloves, "Customer Reviews". They count only when written in lower case.
AMBIGUOUS_PERSON_NOUNS = {
    "model",
    "models",
    "he",
    "she",
    "fan",
    "fans",
    "police",
    "customer",
    "customers",
    "youth",
    "driver",
    "drivers",
    "rider",
    "riders",
    "pilot",
    "pilots",
    "host",
    "guard",
    "guards",
    "warrior",
    "warriors",
    "champion",
    "champions",
    "winner",
    "winners",
    "leader",
    "leaders",
    "individual",
    "human",
    "humans",
    "executive",
    "manager",
    "patient",
    "patients",
}

# Product words: a caption naming people only as the target group of a product ("Women's jacket",
# "t-shirt for men") describes an object, not a person.
PRODUCT_WORDS = {
    "shirt",
    "t-shirt",
    "tshirt",
    "tee",
    "tank",
    "top",
    "jacket",
    "coat",
    "sweater",
    "sweatshirt",
    "hoodie",
    "dress",
    "skirt",
    "pants",
    "jeans",
    "shorts",
    "shoes",
    "shoe",
    "sneakers",
    "trainers",
    "boots",
    "sandals",
    "socks",
    "hat",
    "cap",
    "bag",
    "tote",
    "wallet",
    "watch",
    "ring",
    "necklace",
    "costume",
    "pajama",
    "pajamas",
    "doll",
    "toy",
    "toys",
    "book",
    "workbook",
    "invitation",
    "poster",
    "sticker",
    "mug",
    "cover",
    "case",
    "album",
    "clips",
    "trampoline",
    "vector",
    "clipart",
    "illustration",
    "logo",
    "icon",
    "cartoon",
    "font",
    "coloring",
    "colouring",
    "printable",
    "template",
    "wallpaper",
    "dvd",
    "game",
    "blazer",
    "fleece",
    "crewneck",
    "uniform",
    "swimsuit",
    "bikini",
    "underwear",
    "bra",
    "perfume",
    "haircuts",
    "hairstyles",
    "gloves",
    "glove",
    "boot",
    "earrings",
    "jewelry",
    "jewellery",
    "handkerchiefs",
    "scarf",
    "pant",
    "magnet",
    "favours",
    "favors",
    "gift",
    "gifts",
    "bags",
    "canvas",
    "form",
    "chart",
    "training",
    "resume",
    "samples",
    "tents",
    "seats",
    "pdf",
    "recipes",
    "kit",
    "helmet",
    "backpack",
    "stroller",
    "crib",
    "furniture",
    "print",
    "prints",
    "decal",
    "pattern",
    "sewing",
    "knitting-pattern",
    "fabric",
    "insulated",
    "bottle",
    "3d",
    "song",
    "ep",
    "paperback",
    "hardcover",
    "kindle",
    "novel",
    "episode",
    "trailer",
    "soundtrack",
    "vinyl",
    "figure",
    "figurine",
    "sculpture",
    "mural",
    "decor",
    "card",
    "cards",
    "stamp",
    "costumes",
    "sweater",
    "blouse",
    "leggings",
    "trousers",
    "hoodies",
    "sneaker",
    "tshirts",
    "shirts",
    "dresses",
    "coats",
    "jackets",
}
# Words of a title (a song, album, book, film or game): a title-case person noun next to them is
# part of the title ("Los Lonely Boys - I'm A Man (Album Version)"), not a depicted person.
TITLE_WORDS = {
    "album",
    "version",
    "song",
    "ep",
    "single",
    "remix",
    "official",
    "video",
    "dvd",
    "blu",
    "paperback",
    "hardcover",
    "kindle",
    "book",
    "novel",
    "episode",
    "season",
    "series",
    "trailer",
    "soundtrack",
    "lyrics",
    "vinyl",
    "cd",
    "mp3",
    "game",
    "t-shirt",
    "tshirt",
    "shirt",
    "tee",
    "poster",
    "print",
    "sticker",
    "mug",
    "card",
    "cards",
}
# Text that marks a caption as not safe for work even without an NSFW column.
NSFW_WORDS = {
    "fuck",
    "fucking",
    "fucked",
    "porn",
    "porno",
    "nude",
    "nudes",
    "naked",
    "sex",
    "sexy",
    "xxx",
    "slave",
    "slavehold",
    "domina",
    "fetish",
    "erotic",
    "topless",
    "nsfw",
    "hentai",
    "milf",
    "boobs",
}
# Capitalised words common in captions that are not names.
NOT_NAMES = {
    "stock",
    "photo",
    "photos",
    "images",
    "image",
    "photography",
    "royalty",
    "free",
    "premium",
    "vector",
    "illustration",
    "picture",
    "pictures",
    "the",
    "new",
    "young",
    "old",
    "happy",
    "smiling",
    "portrait",
    "beautiful",
    "little",
    "close",
    "closeup",
    "getty",
    "shutterstock",
    "alamy",
    "istock",
    "ap",
    "reuters",
    # stock-photo boilerplate of LAION alt-texts in other languages
    "stockfoto",
    "stockfotos",
    "stockfotografie",
    "fotografie",
    "foto",
    "fotos",
    "vectorial",
    "vetorial",
    "vektorgrafik",
    "stockbild",
    "stockbilder",
    "lizenzfreie",
    "bild",
    "imagem",
    "imagen",
    "immagine",
    "photographie",
    "stocker",
    "depositphotos",
    "dreamstime",
    "fotolia",
    "123rf",
    "pixabay",
    "unsplash",
    "thumbnail",
    "png",
    "jpg",
    "psd",
    "clipart",
    "royalty",
    "stock",
}
# Given names that are also common words: a name only when a capitalised surname follows.
AMBIGUOUS_NAMES = {
    "rose",
    "lily",
    "will",
    "mark",
    "bill",
    "grace",
    "joy",
    "max",
    "ray",
    "jack",
    "amber",
    "crystal",
    "ruby",
    "violet",
    "iris",
    "holly",
    "april",
    "dale",
    "dean",
    "don",
    "faith",
    "hope",
    "june",
    "pat",
    "rob",
    "sue",
    "summer",
    "willow",
    "angel",
    "daisy",
    "jade",
    "lady",
    "king",
    "victoria",
    "georgia",
    "paris",
    "chase",
    "hunter",
    "miles",
    "frank",
    "gene",
    "art",
    "drake",
    "chad",
    "sky",
}
POSSESSIVE_PERSON = re.compile(r"\b(?:wo)?men(?:'s|s)\b|\b(?:kids|boys|girls|ladies|children)'s?", re.IGNORECASE)
# An honorific or title (any capitalisation: "Mr. Smith", "MR SMITH", "mr smith" all count when the
# name is capitalised) followed by a capitalised word that is not a common title-case word.
HONORIFICS = re.compile(
    r"\b(?i:mr|mrs|ms|mx|dr|prof|sir|dame|gov|governor|sen|senator|rep|pres|president|prince|"
    r"princess|pope|capt|captain|gen|general|col|sgt|sergeant|lt|rev|reverend|judge|mayor|"
    r"chancellor|minister|premier|sheikh|sultan|emperor|empress|duke|duchess|king|queen|lord|"
    r"lady|saint|st|coach)\.?\s+([A-Z][^\W\d_]+(?:['’][^\W\d_]+)?)"
)
# Titles: a capitalised pair starting with one is a name only when the honorific rule says so.
TITLES = {"queen", "king", "prince", "princess", "lord", "lady", "saint", "st", "mr", "mrs", "ms", "dr", "sir"}
# Words after a title that are not names ("Queen Bee", "King Size", "Mr. & Mrs. Guest Book", "St Patrick's Day"
# is a name but a holiday, "Lady Bug").
NOT_AFTER_TITLE = {
    "bee",
    "size",
    "bed",
    "guest",
    "book",
    "bug",
    "day",
    "and",
    "of",
    "the",
    "mattress",
    "mother",
    "father",
    "party",
    "collection",
    "edition",
    "series",
    "street",
    "st",
    "road",
    "avenue",
    "patrick",
    "patricks",
    "valentine",
    "valentines",
    "louis",
    "petersburg",
    "paul",
    "pauls",
    "moritz",
    "tropez",
    "lucia",
    "kitts",
    "barts",
    "ives",
    "andrews",
    "albans",
    "helens",
    "pepper",
    "clean",
    "right",
    "wrong",
    "potato",
    "fix",
    "muscle",
    "fit",
    "bean",
    "beast",
}
# Unicode words: letters, then letters/digits with inner apostrophes or hyphens ("Nenê", "O'Brien", "t-shirt").
WORD = re.compile(r"[^\W\d_](?:[^\W_]|['’\-](?=[^\W_]))*")
SLUG = re.compile(r"[-_]")
COUNT_WORDS = {
    "one": 1,
    "a": 1,
    "an": 1,
    "single": 1,
    "lone": 1,
    "two": 2,
    "pair": 2,
    "couple": 2,
    "both": 2,
    "twins": 2,
    "three": 3,
    "trio": 3,
    "four": 4,
    "quartet": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
GROUP_WORDS = {
    "group": (3, 6),
    "crowd": (5, 8),
    "team": (4, 7),
    "family": (3, 5),
    "families": (4, 7),
    "friends": (2, 4),
    "people": (2, 5),
    "men": (2, 4),
    "women": (2, 4),
    "children": (2, 4),
    "kids": (2, 4),
    "students": (3, 6),
    "audience": (5, 8),
    "couple": (2, 2),
}
DETERMINERS = {
    "a",
    "an",
    "the",
    "this",
    "that",
    "these",
    "those",
    "his",
    "her",
    "their",
    "our",
    "my",
    "some",
    "many",
    "several",
    "young",
    "old",
    "elderly",
    "little",
    "smiling",
    "happy",
}
REWRITE_WORDS = re.compile(r"\b(male|female|person|man|woman|people|men|women|persons)\b", re.IGNORECASE)
ETHNICITIES = [
    "African",
    "Asian",
    "Caucasian",
    "Hispanic",
    "Indian",
    "Middle Eastern",
    "East Asian",
    "South Asian",
    "Southeast Asian",
    "Latino",
    "Black",
    "White",
    "Native American",
    "Pacific Islander",
]


@lru_cache(maxsize=1)
def first_names() -> frozenset[str]:
    text = resources.files(__package__).joinpath("first_names.txt").read_text()
    return frozenset(w for line in text.splitlines() if not line.startswith("#") for w in line.split())


MARKUP = re.compile(r"<[^>]*>|\bhttps?://\S+|\bwww\.\S+|&[a-z]+;|&#\d+;")


def strip_markup(caption: str) -> str:
    """The caption without HTML tags, entities and URLs (LAION alt-texts carry some)."""
    return MARKUP.sub(" ", caption)


def words(caption: str) -> list[str]:
    return WORD.findall(caption)


def _parts(tokens: list[str]) -> list[str]:
    """Tokens with slugs split ("manchester-united-celebrates-goal-in-front-of-city-players")."""
    out: list[str] = []
    for t in tokens:
        out.extend(p for p in SLUG.split(t) if p) if ("-" in t or "_" in t) else out.append(t)
    return out


def is_nsfw_text(caption: str) -> bool:
    return any(w.lower() in NSFW_WORDS for w in _parts(words(caption)))


def _person_noun(token: str) -> bool:
    low = token.lower()
    if low in AMBIGUOUS_PERSON_NOUNS:
        return token.islower()
    return low in PERSON_NOUNS


def _is_title_case(tokens: list[str]) -> bool:
    long = [t for t in tokens if len(t) > 3]
    return bool(long) and sum(t[0].isupper() for t in long) / len(long) > 0.6


def is_about_people(caption: str) -> bool:
    """True when a person noun occurs as a depicted person, not only as a product's target group or in a title."""
    stripped = POSSESSIVE_PERSON.sub(" ", strip_markup(caption))  # "Women's jacket", "Mens T-Shirt"
    raw = _parts(words(stripped))
    tokens = [w.lower() for w in raw]
    # "Programmed Word Attack for Teachers", "keep the kids happy", "ideas for the book lovers":
    # audiences, not subjects.
    depicted = [
        i for i, t in enumerate(raw) if _person_noun(t) and not {"for", "keep"} & set(tokens[max(0, i - 3) : i])
    ]
    if not depicted:
        return False
    every = set(tokens) | {w.lower() for w in words(stripped)}
    if every & PRODUCT_WORDS or every & TITLE_WORDS:
        # With product or title words around, only a described person counts: "a young girl reading a
        # book", not "Kids Birthday Invitation" nor "Los Lonely Boys - I'm A Man (Album Version)".
        if _is_title_case(raw) and all(raw[i][0].isupper() for i in depicted):
            return False
        determiners = DETERMINERS | set(COUNT_WORDS)
        return any(tok in determiners for i in depicted for tok in tokens[max(0, i - 3) : i])
    return True


def _honorific_name(caption: str) -> bool:
    for m in HONORIFICS.finditer(caption):
        if m.group(1).lower().removesuffix("'s").removesuffix("’s") not in NOT_AFTER_TITLE:
            return True
    return False


# A photo credit or signature followed by a name: "(AP Photo/Matt Rourke)", "REUTERS/Jayanta Shaw",
# "Artist: Uwe Umstätter", "Artist: naumoid", "© Gail Harker", "Foto © Fabio Salles".
CREDIT = re.compile(
    r"(?:\b(?i:photo|foto|photograph|photographer|artist|credit|credits|courtesy|reuters|afp|epa|"
    r"getty images|ap)\s*(?:[:/©]|&#47;|by\b)|©|\(c\))\s*([^\W\d_][\w'’\-]+)"
)


def _credit_name(caption: str) -> bool:
    return any(m.group(1).lower() not in NOT_NAMES | PERSON_NOUNS for m in CREDIT.finditer(caption))


def names_person(caption: str, pairs: bool = True) -> bool:
    """True when the caption names a person: honorific + name, a photo credit, a given name, or (with
    ``pairs``) a capitalised Name Surname pair in an otherwise lower-case caption.

    The built-in rules, used alone when no NER model is configured and next to one otherwise (then
    without ``pairs``, whose place names and titles the NER model tells apart).
    """
    if _honorific_name(caption) or _credit_name(caption):
        return True
    tokens = words(caption)
    if _role_name(tokens):
        return True
    names = first_names()
    title_case = _is_title_case(tokens)
    for i, tok in enumerate(tokens):
        if not tok[0].isupper():
            continue
        low = tok.lower().removesuffix("'s").removesuffix("’s")
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        nxt_low = nxt.lower().removesuffix("'s").removesuffix("’s")
        nxt_is_word = nxt_low in PERSON_NOUNS or nxt_low in NOT_NAMES or nxt_low in PRODUCT_WORDS
        if low in names:
            if low not in AMBIGUOUS_NAMES:
                return True
            # "Bill Gates watches ...", "Rose Byrne": an ambiguous given name followed by a capitalised
            # surname-like word, also in title-case captions.
            if (
                nxt[:1].isupper()
                and len(nxt) > 2
                and not nxt_is_word
                and (not title_case or nxt_low in names or _surname_like(nxt))
            ):
                return True
        # "... for the crowd, said Franklin Reyes": a capitalised pair in an otherwise lower-case caption.
        if (
            pairs
            and not title_case
            and nxt[:1].isupper()
            and len(tok) > 2
            and len(nxt) > 2
            and not {low, nxt_low} & (PERSON_NOUNS | NOT_NAMES | TITLES)
            and (i == 0 or tokens[i - 1][:1].islower())
        ):
            return True
    return False


def _role_name(tokens: list[str]) -> bool:
    """A role followed by a capitalised Name Surname: "Actor Denzel Washington", "goalie Henrik Lundqvist"."""
    for i in range(len(tokens) - 2):
        role, a, b = tokens[i].lower(), tokens[i + 1], tokens[i + 2]
        if (
            role in ROLE_NOUNS
            and a[:1].isupper()
            and b[:1].isupper()
            and len(a) > 1
            and len(b) > 1
            and not {a.lower(), b.lower()} & (PERSON_NOUNS | NOT_NAMES | COMMON_TITLE_WORDS)
        ):
            return True
    return False


# Roles written before a name in news and stock captions.
ROLE_NOUNS = {
    "actor",
    "actress",
    "singer",
    "rapper",
    "model",
    "player",
    "goalie",
    "goalkeeper",
    "striker",
    "coach",
    "manager",
    "director",
    "ceo",
    "chairman",
    "founder",
    "author",
    "writer",
    "artist",
    "painter",
    "sculptor",
    "photographer",
    "designer",
    "chef",
    "president",
    "senator",
    "minister",
    "mayor",
    "governor",
    "star",
    "comedian",
    "musician",
    "guitarist",
    "drummer",
    "dancer",
    "boxer",
    "golfer",
    "driver",
    "rider",
    "champion",
    "winner",
    "host",
    "presenter",
    "journalist",
    "reporter",
    "politician",
    "businessman",
    "businesswoman",
    "entrepreneur",
    "athlete",
    "quarterback",
    "forward",
    "midfielder",
    "defender",
    "pitcher",
    "wife",
    "husband",
    "daughter",
    "son",
    "mother",
    "father",
    "boyfriend",
    "girlfriend",
    "fiance",
    "fiancee",
    "brother",
    "sister",
    "friend",
    "teammate",
    "stars",
}


def _surname_like(token: str) -> bool:
    """A capitalised word that does not look like a common English word (has no lower-case use in captions)."""
    return token[:1].isupper() and token[1:].islower() and token.lower() not in COMMON_TITLE_WORDS


# Common title-case words after an ambiguous given name ("Will Power", "Max Performance", "Rose Gold").
COMMON_TITLE_WORDS = {
    "gold",
    "garden",
    "power",
    "performance",
    "quartz",
    "water",
    "bowl",
    "petals",
    "bush",
    "pink",
    "red",
    "white",
    "black",
    "blue",
    "green",
    "oil",
    "tea",
    "wine",
    "scent",
    "perfume",
    "candle",
    "print",
    "pattern",
    "flower",
    "flowers",
    "bouquet",
    "dress",
    "hat",
    "shirt",
    "collection",
    "edition",
    "series",
    "size",
    "pro",
    "plus",
    "max",
    "mini",
    "light",
    "street",
    "road",
    "avenue",
    "park",
    "house",
    "hotel",
    "beach",
    "city",
    "island",
    "river",
    "lake",
    "mountain",
    "valley",
    "county",
    "state",
    "school",
    "college",
    "university",
    "bank",
    "club",
    "team",
    "game",
    "games",
    "book",
    "books",
    "music",
    "band",
    "records",
    "film",
    "films",
    "movie",
    "show",
    "tv",
    "radio",
    "news",
    "magazine",
    "cake",
    "cakes",
    "cookies",
    "pie",
    "ring",
    "rings",
    "necklace",
    "earrings",
    "bracelet",
    "pendant",
    "jewelry",
    "jewellery",
    "stone",
    "stones",
    "wood",
    "glass",
    "steel",
    "iron",
    "silver",
    "bronze",
    "leather",
    "cotton",
    "silk",
    "wool",
    "linen",
    "lace",
    "denim",
    "velvet",
    "satin",
    "crystal",
    "diamond",
    "pearl",
    "ruby",
    "sapphire",
    "emerald",
    "jade",
    "amber",
    "opal",
    "art",
    "design",
    "designs",
    "style",
    "styles",
    "day",
    "night",
    "morning",
    "evening",
    "summer",
    "winter",
    "spring",
    "autumn",
    "fall",
    "christmas",
    "easter",
    "holiday",
    "party",
    "wedding",
    "birthday",
    "love",
    "heart",
    "hearts",
    "star",
    "stars",
    "sun",
    "moon",
    "sky",
    "sea",
    "ocean",
    "bay",
    "hill",
    "hills",
    "field",
    "fields",
    "farm",
    "forest",
    "tree",
    "trees",
    "rose",
    "roses",
    "lily",
    "lilies",
    "daisy",
    "iris",
    "violet",
    "holly",
    "ivy",
    "willow",
    "grace",
    "hope",
    "faith",
    "joy",
    "king",
    "queen",
    "prince",
    "princess",
    "lady",
    "angel",
    "angels",
    "saint",
    "new",
    "old",
    "big",
    "little",
    "small",
    "large",
    "the",
    "and",
    "of",
    "for",
    "with",
    "in",
    "on",
    "at",
    "to",
}


def person_count(caption: str, rng: np.random.Generator, max_persons: int) -> int:
    """How many people to draw: stated in the caption when it says so, otherwise sampled."""
    tokens = [w.lower() for w in words(caption)]
    for i, tok in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if (
            tok in COUNT_WORDS
            and tok not in ("a", "an")
            and (nxt in PERSON_NOUNS or tok in ("couple", "pair", "twins", "trio"))
        ):
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
    return {" ".join(toks[i : i + k]) for i in range(len(toks) - k + 1)}


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
            keys = [sig[b * self.rows : (b + 1) * self.rows].tobytes() for b in range(self.bands)]
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
