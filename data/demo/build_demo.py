"""Write laion_demo.parquet: a caption source in LAION's metadata format, written for this project.

The rows mimic what LAION metadata holds (URL, TEXT, WIDTH, HEIGHT, NSFW, similarity, punsafe,
pwatermark). The first 45 exercise every rule of the sample_captions stage: people captions to keep,
objects, products for people, named persons, NSFW flags, extreme aspect ratios and near-duplicates.
Then GENERATED captions about people, combined from subjects (one person, two, a group), actions
and places, enough for the default run to train a model that works (thousands of images); their
person counts follow the hand-written ones (about 60 % one person, 20 % two, 20 % groups).
Deterministic: the same file every run.
Run: python data/demo/build_demo.py
"""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

KEEP = [
    "a woman smiling at the camera in a sunny park",
    "two men talking on a city street at night",
    "a group of friends laughing around a kitchen table",
    "portrait of an elderly man with a grey beard",
    "a young girl reading a book under a tree",
    "three students walking to class together",
    "a couple dancing at a wedding reception",
    "a chef cooking in a busy restaurant kitchen",
    "a family having a picnic on the beach",
    "a man riding a bicycle along the river",
    "two women drinking coffee in a cafe",
    "a boy playing football in the backyard",
    "a nurse talking with a patient in a hospital room",
    "a crowd of people watching a concert outdoors",
    "a businessman giving a presentation in an office",
    "a teenager taking a selfie in front of a mural",
    "four friends hiking on a mountain trail",
    "a mother holding her baby by the window",
    "a farmer standing in a wheat field at sunset",
    "a woman jogging in the morning fog",
    "a man and a woman sitting on a bench",
    "people waiting for the train on a platform",
    "a musician playing guitar on a small stage",
    "a doctor looking at an x-ray in a clinic",
    "two kids building a sandcastle at the beach",
    "a student studying in a quiet library",
    "a team of workers at a construction site",
    "an old woman knitting in a rocking chair",
    "a man laughing while talking on the phone",
    "a girl with curly hair wearing a red scarf",
]
DROP = [
    ("Women's leather jacket with zip pockets", "product"),
    ("Mens cotton T-Shirt, navy blue, size L", "product"),
    ("ceramic coffee mug with floral pattern", "object"),
    ("sunset over the mountains, landscape photography", "object"),
    ("a red vintage car parked on the street", "object"),
    ("Emma Stone smiling with friends at the film premiere", "name"),
    ("President Smith waves to the crowd", "name"),
    ("actor Michael Jordan posing for photographers", "name"),
]


GENERATED = 4000
SINGLE = [
    "a woman",
    "a man",
    "an old man",
    "an elderly woman",
    "a young girl",
    "a boy",
    "a teenager",
    "a chef",
    "a nurse",
    "a doctor",
    "a student",
    "a farmer",
    "a musician",
    "a businessman",
    "a young woman",
    "a young man",
    "a girl with curly hair",
    "a man with a beard",
    "a woman in a red coat",
    "a tourist",
]
PAIR = [
    "two men",
    "two women",
    "a couple",
    "a man and a woman",
    "two friends",
    "two kids",
    "a mother and her son",
    "two students",
]
GROUP = [
    "a group of friends",
    "three students",
    "four friends",
    "a family",
    "a group of people",
    "three children",
    "a team of workers",
    "a group of tourists",
]
ACTIONS = [
    "smiling at the camera",
    "talking",
    "laughing",
    "standing",
    "walking",
    "posing for a photo",
    "waiting",
    "looking at the sky",
    "reading a map",
    "drinking coffee",
    "eating lunch",
    "having a conversation",
    "listening to music",
    "taking a break",
    "looking at each other",
    "waving",
    "sitting together",
    "watching the sunset",
    "shopping",
    "playing cards",
]
PLACES = [
    "in a sunny park",
    "on a city street at night",
    "in a busy cafe",
    "at the beach",
    "in an office",
    "in a library",
    "at a train station",
    "in a kitchen",
    "on a mountain trail",
    "in a garden",
    "at a market",
    "in a living room",
    "on a rooftop terrace",
    "in a museum",
    "at a bus stop",
    "in the snow",
    "by the river",
    "in a classroom",
    "at a wedding",
    "on a football field",
    "in a shopping mall",
    "at an airport",
    "in a forest",
    "on a boat",
]


def generated_captions(n: int = GENERATED) -> list[str]:
    """``n`` distinct people captions, ``subject action place``, in a fixed pseudo-random order."""
    import random

    rng = random.Random(0)
    out, seen = [], set()
    while len(out) < n:
        u = rng.random()
        subjects = SINGLE if u < 0.6 else PAIR if u < 0.8 else GROUP
        text = f"{rng.choice(subjects)} {rng.choice(ACTIONS)} {rng.choice(PLACES)}"
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def build() -> pa.Table:
    rows = []
    for i, text in enumerate(KEEP):
        rows.append(
            dict(
                URL=f"https://example.org/demo/{i:04d}.jpg",
                TEXT=text,
                WIDTH=1024,
                HEIGHT=768 + 16 * (i % 5),
                NSFW="UNLIKELY",
                similarity=0.32,
                punsafe=0.02,
                pwatermark=0.05,
            )
        )
    for j, (text, _) in enumerate(DROP):
        rows.append(
            dict(
                URL=f"https://example.org/demo/d{j:03d}.jpg",
                TEXT=text,
                WIDTH=800,
                HEIGHT=800,
                NSFW="UNLIKELY",
                similarity=0.3,
                punsafe=0.01,
                pwatermark=0.1,
            )
        )
    # Rule cases: NSFW flags, an extreme aspect ratio, near-duplicates, empty and missing captions.
    rows += [
        dict(
            URL="https://example.org/demo/n1.jpg",
            TEXT="a woman posing on a beach",
            WIDTH=900,
            HEIGHT=900,
            NSFW="NSFW",
            similarity=0.3,
            punsafe=0.9,
            pwatermark=0.1,
        ),
        dict(
            URL="https://example.org/demo/n2.jpg",
            TEXT="a man posing in a studio",
            WIDTH=900,
            HEIGHT=900,
            NSFW="UNSURE",
            similarity=0.3,
            punsafe=0.5,
            pwatermark=0.1,
        ),
        dict(
            URL="https://example.org/demo/a1.jpg",
            TEXT="a panorama of people on a long beach promenade",
            WIDTH=3000,
            HEIGHT=600,
            NSFW="UNLIKELY",
            similarity=0.3,
            punsafe=0.01,
            pwatermark=0.1,
        ),
        dict(
            URL="https://example.org/demo/u1.jpg",
            TEXT="A woman smiling at the camera in a sunny park!",
            WIDTH=1024,
            HEIGHT=768,
            NSFW="UNLIKELY",
            similarity=0.3,
            punsafe=0.01,
            pwatermark=0.1,
        ),
        dict(
            URL="https://example.org/demo/u2.jpg",
            TEXT="two men talking on a city street at night time",
            WIDTH=1024,
            HEIGHT=768,
            NSFW="UNLIKELY",
            similarity=0.3,
            punsafe=0.01,
            pwatermark=0.1,
        ),
        dict(
            URL="https://example.org/demo/e1.jpg",
            TEXT="   ",
            WIDTH=640,
            HEIGHT=480,
            NSFW="UNLIKELY",
            similarity=0.3,
            punsafe=0.01,
            pwatermark=0.1,
        ),
        dict(
            URL="https://example.org/demo/e2.jpg",
            TEXT=None,
            WIDTH=640,
            HEIGHT=480,
            NSFW="UNLIKELY",
            similarity=0.3,
            punsafe=0.01,
            pwatermark=0.1,
        ),
    ]
    for i, text in enumerate(generated_captions()):
        rows.append(
            dict(
                URL=f"https://example.org/demo/g{i:05d}.jpg",
                TEXT=text,
                WIDTH=1024,
                HEIGHT=768,
                NSFW="UNLIKELY",
                similarity=0.31,
                punsafe=0.02,
                pwatermark=0.05,
            )
        )
    schema = pa.schema(
        [
            ("URL", pa.string()),
            ("TEXT", pa.string()),
            ("WIDTH", pa.int64()),
            ("HEIGHT", pa.int64()),
            ("NSFW", pa.string()),
            ("similarity", pa.float64()),
            ("punsafe", pa.float64()),
            ("pwatermark", pa.float64()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


if __name__ == "__main__":
    out = Path(__file__).with_name("laion_demo.parquet")
    pq.write_table(build(), out)
    print(f"wrote {out}")
