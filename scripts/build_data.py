#!/usr/bin/env python3
"""Build data/ from data/sources (CLINC150, NLU++, TREC), WordNet and Debian's fortune files. Stdlib only,
deterministic (no random module: every subsample is an order by SHA-256 of the text), re-runnable.
The generated files are committed; CI never runs this.

Needs, besides data/sources (CLINC150, NLU++, TREC, as published, with their licences):
    apt-get install wordnet-base fortunes fortunes-min
which install /usr/share/wordnet/ (Princeton WordNet 3.0) and /usr/share/games/fortunes/.

Sources (the `source` field of every sample; see data/README.md for licences and mappings):
  clinc150             intents, the 7 seen CLINC150 domains (train+val+test lists)
  nlupp                intents, NLU++ banking + hotels, multi-label
  wordnet_domains      topic domain of a WordNet synset (`;c` pointer: law, chemistry, music, ...)
                       on its definition and example sentences
  wordnet_categories   WordNet lexicographer file of a synset (noun.food -> "food or drink", ...)
                       on its definition, synsets without a topic domain only, capped per category
  fortunes_topics      topic file of a Debian fortune (quotation -> "politics", "computers", ...)
  fortunes_genre       genre file of a Debian fortune (riddle, poem or song lyrics, ...)
  trec                 question type (held out whole: evaluation only)

Outputs (JSON lists of {"text", "labels": [...], "source"}):
  data/train.json                 the default training mixture (every source above but trec,
                                  without the held-out labels and texts)
  data/train_clinc_nlupp.json     the previous default (clinc150 + nlupp), as a comparison row
  data/clinc150_unseen.json       CLINC150 test texts of the 3 held-out domains (reported number)
  data/clinc150_unseen_dev.json   CLINC150 val texts of the same domains (probe)
  data/clinc150_test.json         CLINC150 test texts of all 10 domains
  data/nlupp.json                 NLU++ alone
  data/heldout/{trec,wordnet_domains,fortunes}_{dev,test}.json
                                  held-out tasks: labels and texts never in train.json; *_dev for
                                  the probe (model selection), *_test (disjoint texts) for reports
"""
import argparse
import hashlib
import json
import pathlib
import re
from collections import defaultdict

# ---------------------------------------------------------------------------------------------
# CLINC150 and NLU++
# ---------------------------------------------------------------------------------------------
HELD_OUT_DOMAINS = ["auto_and_commute", "home", "utility"]

# NLU++ intent names are terse or packed; these are their natural-language label texts
# (from the ontology's descriptions). Unlisted names use the name with '_' as spaces.
NLUPP_LABELS = {
    "dont_know": "don't know",
    "end_call": "end call",
    "handoff": "speak to a human",
    "cancel_close_leave_freeze": "cancel, close, leave or freeze",
    "make_open_apply_setup_get_activate": "make, open, apply, set up or activate",
    "request_info": "request information",
    "wrong_notworking_notshowing": "something wrong or not working",
    "lost_stolen": "lost or stolen",
    "more_higher_after": "more, higher or after",
    "less_lower_before": "less, lower or before",
    "existing": "something existing",
    "savings": "savings account",
    "current": "current account",
    "business": "business account",
    "transfer_payment_deposit": "transfer, payment or deposit",
    "fees_interests": "fees or interest",
    "accesibility": "accessibility",
    "room_ammenities": "room amenities",
    "wifi": "wifi",
    "check_in": "check in",
    "check_out": "check out",
}

# ---------------------------------------------------------------------------------------------
# TREC (Li & Roth 2002): held out whole. Coarse classes, labels fixed a priori (not tuned).
# The 50 fine classes are not used: many of their readable names (food, animal, plant, event,
# substance, sport, ...) are trained labels of the WordNet sources.
# ---------------------------------------------------------------------------------------------
TREC_COARSE = {
    "ABBR": "abbreviation",
    "DESC": "description",
    "ENTY": "entity",
    "HUM": "person",
    "LOC": "location",
    "NUM": "number",
}

# ---------------------------------------------------------------------------------------------
# WordNet topic domains. A domain is the target synset of a `;c` pointer, named by its first
# lemma ('_' as spaces); synsets of the same name are merged (music has four senses).
# ---------------------------------------------------------------------------------------------
# Readable names where the lemma is not one, and merges of near-duplicate domains.
WN_DOMAIN_NAMES = {
    "homo": "humans",
    "plant": "plants",          # the flora sense; the factory sense has 1 member (dropped by size)
    "animal": "animals",
    "Roman_Catholic": "Christianity",      # held-out group: Catholic Church terms
    "Anglican_Church": "Christianity",
    "Christian_theology": "Christianity",
    "New_Testament": "Christianity",
    "football": "American football",       # its members are American-football terms (punt, kickoff)
    "card_game": "card games",
    "bridge": "card games",
    "Teuton": "Germanic peoples",
    "cosmology": "astronomy",              # held-out group: the origin and structure of the universe
}
# Held-out groups (never trained on): sports and games, religions, earth and space sciences.
# 18 of the 114 domain names with >= 10 definitions (16%), 13 of the 83 with >= 15; with the
# dropped ones below, 23% and 24%. Scored in data/heldout/wordnet_domains_*.json.
WN_HELD_OUT = [
    # sports and games
    "baseball", "golf", "American football", "soccer", "basketball", "tennis", "boxing",
    "ice hockey", "cricket", "chess", "card games",
    # religions
    "Judaism", "Christianity", "Islam", "Hinduism", "Buddhism",
    # earth and space sciences (meteorology also keeps "weather", a held-out CLINC150 intent, out)
    "geology", "astronomy", "meteorology",
]
# Neither trained nor scored: the held-out groups' umbrella labels (training on "sport" or
# "religion" would teach the held-out topics under another name), their members too small to
# score (< 10 definitions), and labels whose texts straddle two held-out classes.
WN_DROPPED = {
    "sport", "game", "softball", "rugby", "fencing", "badminton", "squash", "water sport",
    "riding", "religion", "theology", "church service", "Old Testament", "Bible", "Sikhism",
    "astrology",   # zodiac signs and planets: astronomy's texts under another name
    "education",   # fortunes "education" is held out
}
WN_MIN_TRAIN = 5          # a trained domain needs this many definitions
WN_DOMAIN_CAP = 300       # definitions per trained domain (law has 599); examples come on top

# Lexicographer files (WordNet's semantic categories of nouns and verbs) as readable labels.
# Not used: noun.Tops (unique beginners), adj.* and adv.* (grammatical, not semantic),
# noun.time and verb.weather (their natural names "time" and "weather" are held-out CLINC150
# intents). Names avoid the TREC labels (person, location, number).
WN_CATEGORIES = {
    "noun.act": "act or activity",
    "noun.animal": "animal",
    "noun.artifact": "man-made object",
    "noun.attribute": "attribute or quality",
    "noun.body": "body part",
    "noun.cognition": "idea or field of knowledge",
    "noun.communication": "communication or message",
    "noun.event": "event or happening",
    "noun.feeling": "feeling or emotion",
    "noun.food": "food or drink",
    "noun.group": "group or collection",
    "noun.location": "place or region",
    "noun.motive": "goal or motive",
    "noun.object": "natural object",
    "noun.person": "people and roles",
    "noun.phenomenon": "natural phenomenon",
    "noun.plant": "plant",
    "noun.possession": "possession or property",
    "noun.process": "natural process",
    "noun.quantity": "quantity or unit of measure",
    "noun.relation": "relation",
    "noun.shape": "shape",
    "noun.state": "state or condition",
    "noun.substance": "substance or material",
    "verb.body": "bodily function or grooming",
    "verb.change": "changing something",
    "verb.cognition": "thinking or knowing",
    "verb.communication": "speaking or communicating",
    "verb.competition": "fighting or competing",
    "verb.consumption": "eating, drinking or using up",
    "verb.contact": "touching or handling",
    "verb.creation": "making or creating",
    "verb.emotion": "having or causing a feeling",
    "verb.motion": "moving or travelling",
    "verb.perception": "seeing, hearing or sensing",
    "verb.possession": "buying, selling or owning",
    "verb.social": "social interaction",
    "verb.stative": "being or having a state",
}
WN_CATEGORY_CAP = 150     # definitions per category

# lexicographer file numbers (WordNet's lexnames(5WN)); only those used above are listed
WN_LEXNAMES = {
    4: "noun.act", 5: "noun.animal", 6: "noun.artifact", 7: "noun.attribute", 8: "noun.body",
    9: "noun.cognition", 10: "noun.communication", 11: "noun.event", 12: "noun.feeling",
    13: "noun.food", 14: "noun.group", 15: "noun.location", 16: "noun.motive", 17: "noun.object",
    18: "noun.person", 19: "noun.phenomenon", 20: "noun.plant", 21: "noun.possession",
    22: "noun.process", 23: "noun.quantity", 24: "noun.relation", 25: "noun.shape",
    26: "noun.state", 27: "noun.substance", 28: "noun.time", 29: "verb.body", 30: "verb.change",
    31: "verb.cognition", 32: "verb.communication", 33: "verb.competition",
    34: "verb.consumption", 35: "verb.contact", 36: "verb.creation", 37: "verb.emotion",
    38: "verb.motion", 39: "verb.perception", 40: "verb.possession", 41: "verb.social",
    42: "verb.stative", 43: "verb.weather",
}

# ---------------------------------------------------------------------------------------------
# Debian fortunes (fortune-mod's data files, packages `fortunes` and `fortunes-min`).
# Only the files of the original fortune-mod distribution (its cookie-files list) that are filed
# by topic or by genre. Not used: the offensive sets (package fortunes-off, not installed), ethnic
# and men-women (jokes about groups of people), startrek, zippy and pratchett (quotes from one
# copyrighted work each), ascii-art and translate-me (not English prose), the Debian-added files
# (debian, linux, knghtbrd, paradoxum, perl, tao, disclaimer: not topic files), and the
# grab-bag files (cookie, miscellaneous, people, humorists, platitudes, wisdom, goedel).
# ---------------------------------------------------------------------------------------------
FORTUNE_TOPICS = {
    "art": "art and entertainment",
    "computers": "computers",
    "linuxcookie": "computers",  # cookie-files: "It probably ought to go in with 'computers'"
    "drugs": "alcohol, tobacco and drugs",
    "food": "food",
    "law": "law",
    "literature": "literature and writing",
    "medicine": "medicine and health",
    "politics": "politics",
    "science": "science and technology",
    "work": "work and business",
    "pets": "pets",   # not held out: "pets" is an NLU++ intent
    # held out (data/heldout/fortunes_*.json)
    "sports": "sports",
    "magic": "magic",
    "love": "love",
    "kids": "children and parenting",
    "education": "education",
    "news": "news and journalism",
}
FORTUNE_HELD_OUT = ["sports", "magic", "love", "children and parenting", "education", "news and journalism"]
FORTUNE_GENRES = {
    "riddles": "riddle",
    "songs-poems": "poem or song lyrics",
    "definitions": "joke dictionary entry",  # not "definition": a held-out CLINC150 intent
    "fortunes": "fortune-cookie message",
}
FORTUNE_MIN_CHARS, FORTUNE_MAX_CHARS = 20, 400   # after cleaning; longer ones are stories

DEV_CAP, TEST_CAP = 600, 3000


# ---------------------------------------------------------------------------------------------
def order_key(text: str, salt: str) -> str:
    """A fixed pseudo-random order, independent of Python version and input order."""
    return hashlib.sha256(f"{salt}\0{text}".encode("utf-8")).hexdigest()


def norm(text: str) -> str:
    """What counts as "the same text" for overlap checks (case and spacing ignored)."""
    return " ".join(text.lower().split())


def sample(text, labels, source):
    return {"text": text, "labels": list(labels), "source": source}


def write(path: pathlib.Path, samples):
    """Repeats of text and labels (CLINC150 and NLU++ have a few, and share "repeat please" ->
    "repeat") are written once, the first kept, whatever their source: so train_clinc_nlupp.json
    loads to the very samples, in the same order, that the old train.json (no sources) loaded to,
    and the trainer's seeded split of it is the same as before."""
    seen, unique = set(), []
    for s in samples:
        key = json.dumps([s["text"], s["labels"]], ensure_ascii=False)
        if key not in seen:
            seen.add(key)
            unique.append(s)
    if len(unique) < len(samples):
        print(f"{path.name}: {len(samples) - len(unique)} exact repeat(s) written once")
    samples = unique
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ",\n".join(json.dumps(s, ensure_ascii=False) for s in samples)
    path.write_text("[\n" + lines + "\n]\n", encoding="utf-8")
    n_labels = len({l for s in samples for l in s["labels"]})
    print(f"wrote {path}: {len(samples)} samples, {n_labels} labels")
    return samples


def split_dev_test(samples, salt):
    """Per label (first label), alternate texts in a fixed order between dev and test; then cap
    dev at DEV_CAP (what it leaves goes to test) and test at TEST_CAP, both in hash order, so label
    shares stay about even. Dev and test never share a text."""
    by_label = defaultdict(list)
    for s in samples:
        by_label[s["labels"][0]].append(s)
    dev, test = [], []
    for label in sorted(by_label):
        group = sorted(by_label[label], key=lambda s: order_key(s["text"], salt))
        dev += group[0::2]
        test += group[1::2]
    kept = cap(dev, DEV_CAP, salt + "/dev")
    kept_ids = {id(s) for s in kept}
    test = cap(test + [s for s in dev if id(s) not in kept_ids], TEST_CAP, salt + "/test")
    dev = kept
    return dev, test


def cap(samples, n, salt):
    if len(samples) <= n:
        return samples
    keep = {id(s) for s in sorted(samples, key=lambda s: order_key(s["text"], salt))[:n]}
    return [s for s in samples if id(s) in keep]


# ---------------------------------------------------------------------------------------------
def build_clinc_nlupp(src: pathlib.Path):
    clinc = json.loads((src / "clinc150" / "data_full.json").read_text())
    domains = json.loads((src / "clinc150" / "domains.json").read_text())
    held_out = {i for d in HELD_OUT_DOMAINS for i in domains[d]}
    seen, unseen_test, unseen_dev, all_test = [], [], [], []
    for part in ("train", "val", "test"):
        for text, intent in clinc[part]:
            s = sample(text.strip(), [intent.replace("_", " ")], "clinc150")
            if intent not in held_out:
                seen.append(s)
            elif part == "test":
                unseen_test.append(s)
            elif part == "val":
                unseen_dev.append(s)
            if part == "test":
                all_test.append(s)
    nlupp = []
    for domain in ("banking", "hotels"):
        for fold in range(20):
            for ex in json.loads((src / "nlupp" / domain / f"fold{fold}.json").read_text()):
                intents = ex.get("intents") or []
                if not intents or not ex["text"].strip():
                    continue
                labels = dict.fromkeys(NLUPP_LABELS.get(i, i.replace("_", " ")) for i in intents)
                nlupp.append(sample(ex["text"].strip(), labels, "nlupp"))
    clinc_unseen_labels = sorted({i.replace("_", " ") for i in held_out})
    return seen, nlupp, unseen_test, unseen_dev, all_test, clinc_unseen_labels


def detokenize_trec(q: str) -> str:
    q = q.replace("`` ", '"').replace(" ''", '"').replace("``", '"').replace("''", '"')
    q = re.sub(r" ([?.,;:!])", r"\1", q)
    q = re.sub(r" (n't|'s|'re|'ve|'ll|'d|'m)\b", r"\1", q)
    return q.strip()


def build_trec(src: pathlib.Path):
    out = []
    for line in (src / "trec" / "train_5500.label").read_bytes().decode("latin-1").splitlines():
        if not line.strip():
            continue
        tag, text = line.split(" ", 1)
        out.append(sample(detokenize_trec(text), [TREC_COARSE[tag.split(":")[0]]], "trec"))
    # the same question filed twice (with different fine tags) is one sample; drop conflicts
    by_text = defaultdict(list)
    for s in out:
        by_text[s["text"]].append(s["labels"][0])
    return [sample(t, [ls[0]], "trec") for t, ls in by_text.items() if len(set(ls)) == 1]


# ---------------------------------------------------------------------------------------------
POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "s": "adj", "r": "adv"}
# a leading "(law)" or "(Greek mythology)" names the domain in the text itself: strip it; keep
# qualifiers that are part of the definition, e.g. "(of a baseball) hit between the foul lines"
QUALIFIER = re.compile(r"^(of|used|especially|in|often|from|an|a|e\.g\.|plural|usually|when|as)\b")


def read_wordnet(wn: pathlib.Path):
    """{(pos_file, offset): {"lexnum", "lemmas", "domains", "definition", "examples"}}"""
    synsets = {}
    for pos in ("noun", "verb", "adj", "adv"):
        for line in (wn / f"data.{pos}").read_text(encoding="latin-1").splitlines():
            if line.startswith("  "):  # licence header
                continue
            head, _, gloss = line.partition(" | ")
            f = head.split()
            n_words = int(f[3], 16)
            lemmas = [f[4 + 2 * i] for i in range(n_words)]
            i = 4 + 2 * n_words
            n_ptrs = int(f[i])
            domains = []
            for k in range(n_ptrs):
                sym, off, p = f[i + 1 + 4 * k : i + 4 + 4 * k]
                if sym == ";c":
                    domains.append((POS_FILES[p], off))
            definition, examples = split_gloss(gloss.strip())
            synsets[(pos, f[0])] = {
                "lexnum": int(f[1]), "lemmas": lemmas, "domains": domains,
                "definition": definition, "examples": examples,
            }
    return synsets


def split_gloss(gloss: str):
    definition = gloss.split('; "')[0].strip().rstrip(";").strip()
    examples = [e.strip() for e in re.findall(r'"([^"]+)"', gloss[len(definition):])]
    m = re.match(r"\(([^)]*)\)\s*", definition)
    if m and not QUALIFIER.match(m.group(1)):
        definition = definition[m.end():]
    return definition, [e for e in examples if len(e.split()) >= 3]


def wn_domain_name(synsets, key):
    lemma = synsets[key]["lemmas"][0]
    return WN_DOMAIN_NAMES.get(lemma, lemma.replace("_", " "))


def build_wordnet(wn: pathlib.Path):
    synsets = read_wordnet(wn)
    held_out = set(WN_HELD_OUT)

    # definitions per domain name, to find the trained ones (>= WN_MIN_TRAIN)
    members = defaultdict(set)
    for key, s in synsets.items():
        for d in s["domains"]:
            members[wn_domain_name(synsets, d)].add(key)
    missing = held_out - members.keys()
    assert not missing, f"held-out WordNet domains not found: {missing}"
    trained = {n for n, m in members.items()
               if len(m) >= WN_MIN_TRAIN and n not in held_out and n not in WN_DROPPED}

    train_defs, heldout = defaultdict(list), []
    for key in sorted(synsets):
        s = synsets[key]
        if not s["domains"] or not s["definition"]:
            continue
        names = sorted({wn_domain_name(synsets, d) for d in s["domains"]})
        h = [n for n in names if n in held_out]
        t = [n for n in names if n in trained]
        if h and not t:
            heldout.append(sample(s["definition"], h, "wordnet_domains"))
        elif t and not h:
            train_defs[tuple(t)].append(s)
        # a synset in a held-out and a trained domain is in neither (its text is both)

    train = []
    for labels in sorted(train_defs):
        group = sorted(train_defs[labels], key=lambda s: order_key(s["definition"], "wn-domains"))
        for s in group[:WN_DOMAIN_CAP]:
            train.append(sample(s["definition"], labels, "wordnet_domains"))
            train += [sample(e, labels, "wordnet_domains") for e in s["examples"]]

    # categories: synsets with no topic domain at all, so no held-out domain text comes in here
    by_cat = defaultdict(list)
    for key in sorted(synsets):
        s = synsets[key]
        cat = WN_LEXNAMES.get(s["lexnum"])
        if cat in WN_CATEGORIES and not s["domains"] and len(s["definition"].split()) >= 2:
            by_cat[WN_CATEGORIES[cat]].append(s["definition"])
    categories = []
    for label in sorted(by_cat):
        texts = sorted(set(by_cat[label]), key=lambda t: order_key(t, "wn-categories"))
        categories += [sample(t, [label], "wordnet_categories") for t in texts[:WN_CATEGORY_CAP]]
    return merge_same_text(train), merge_same_text(heldout), merge_same_text(categories), sorted(trained)


WN_DEFINITIONS_CAP = 8000  # definitions in the reverse-dictionary source


def build_definitions(wn: pathlib.Path, held_labels):
    """A reverse dictionary: a WordNet definition -> the words it defines (its first two lemmas).
    Thousands of distinct labels, each seen a few times at most, so training cannot memorise a
    fixed label set and has to learn to match a text with a label's meaning. Synsets with a topic
    domain are left out (no held-out domain's text or term comes in), and so is every lemma that
    contains a held-out label as a whole word ("tennis", "air traffic", "person")."""
    banned = [re.compile(rf"\b{re.escape(l.lower())}\b") for l in held_labels]
    out = []
    for key, s in sorted(read_wordnet(wn).items()):
        if s["domains"] or len(s["definition"].split()) < 3:
            continue
        lemmas = [re.sub(r"\([a-z]+\)$", "", l).replace("_", " ") for l in s["lemmas"]]
        lemmas = [l for l in dict.fromkeys(lemmas) if not any(b.search(l.lower()) for b in banned)][:2]
        if lemmas:
            out.append(sample(s["definition"], lemmas, "wordnet_definitions"))
    return merge_same_text(cap(out, WN_DEFINITIONS_CAP, "wn-definitions"))


def merge_same_text(samples):
    """One sample per (text, source); labels of repeats are merged (multi-label)."""
    merged = {}
    for s in samples:
        k = (s["text"], s["source"])
        if k in merged:
            merged[k]["labels"] = list(dict.fromkeys(merged[k]["labels"] + s["labels"]))
        else:
            merged[k] = dict(s, labels=list(s["labels"]))
    return list(merged.values())


# ---------------------------------------------------------------------------------------------
def read_fortunes(path: pathlib.Path):
    """Cleaned fortunes of one file: whitespace collapsed (line breaks become spaces); the
    attribution ("-- Mark Twain", "-- Chicago Reader 4/22/83") stays, as it is part of what a
    reader sees and often what makes the topic recognisable. Entries with control characters
    (backspace underlining) or out of the length bounds are left out."""
    raw = path.read_bytes().decode("utf-8", errors="replace")
    out = []
    for entry in re.split(r"\n%\n", raw):
        text = " ".join(entry.split())
        if "\ufffd" in text or re.search(r"[\x00-\x08\x0b-\x1f\x7f]", entry):
            continue
        if FORTUNE_MIN_CHARS <= len(text) <= FORTUNE_MAX_CHARS:
            out.append(text)
    return out


def build_fortunes(fortunes: pathlib.Path):
    def collect(files, source):
        by_text = defaultdict(set)
        for name, label in files.items():
            for text in read_fortunes(fortunes / name):
                by_text[text].add(label)
        # a fortune filed under two topics is multi-label; keep the file order of labels
        order = list(dict.fromkeys(files.values()))
        return [sample(t, sorted(ls, key=order.index), source) for t, ls in sorted(by_text.items())]

    topics = collect(FORTUNE_TOPICS, "fortunes_topics")
    held = set(FORTUNE_HELD_OUT)
    heldout = [s for s in topics if set(s["labels"]) <= held]
    train = [s for s in topics if not set(s["labels"]) & held]   # mixed ones go nowhere
    genre = collect(FORTUNE_GENRES, "fortunes_genre")
    return train, heldout, genre


# ---------------------------------------------------------------------------------------------
def check_disjoint(train, tasks, old_sources=("clinc150", "nlupp")):
    """Held-out labels never trained: exactly (case-insensitive), nor as a whole word of a label
    that the new sources bring ("time" in "time of day"; CLINC150's own "expiration date" vs the
    held-out "date" is as before). Held-out texts never in training; dev/test disjoint."""
    train_labels = {l.lower() for s in train for l in s["labels"]}
    new_labels = {l.lower() for s in train if s["source"] not in old_sources for l in s["labels"]}
    train_texts = {norm(s["text"]) for s in train}
    for name, (dev, test, labels) in tasks.items():
        for l in labels:
            l = l.lower()
            near = [t for t in train_labels if t == l]
            near += [t for t in new_labels if t != l and re.search(rf"\b{re.escape(l)}\b", t)]
            assert not near, f"{name}: held-out label `{l}` is trained as {near}"
        for part in (dev, test):
            bad = [s["text"] for s in part if norm(s["text"]) in train_texts]
            assert not bad, f"{name}: held-out texts in training: {bad[:3]}"
        dev_texts = {norm(s["text"]) for s in dev}
        both = [s["text"] for s in test if norm(s["text"]) in dev_texts]
        assert not both, f"{name}: texts in dev and test: {both[:3]}"
        assert len({l for s in dev for l in s["labels"]}) >= 5, f"{name}: dev has < 5 labels"


def drop_texts(samples, texts, what):
    kept = [s for s in samples if norm(s["text"]) not in texts]
    if len(kept) < len(samples):
        print(f"{what}: dropped {len(samples) - len(kept)} sample(s) whose text is held out")
    return kept


def main():
    root = pathlib.Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default=str(root / "data" / "sources"))
    ap.add_argument("--wordnet", default="/usr/share/wordnet")
    ap.add_argument("--fortunes", default="/usr/share/games/fortunes")
    ap.add_argument("--out", default=str(root / "data"))
    ap.add_argument("--no-definitions", action="store_true", help="leave out the reverse-dictionary source (wordnet_definitions)")
    args = ap.parse_args()
    src, out = pathlib.Path(args.datasets), pathlib.Path(args.out)
    for p, pkg in ((args.wordnet, "wordnet-base"), (args.fortunes, "fortunes fortunes-min")):
        if not pathlib.Path(p).is_dir():
            raise SystemExit(f"{p} not found: apt-get install {pkg}")

    seen, nlupp, unseen_test, unseen_dev, all_test, clinc_unseen_labels = build_clinc_nlupp(src)
    trec = build_trec(src)
    wn_train, wn_heldout, wn_categories, wn_trained = build_wordnet(pathlib.Path(args.wordnet))
    ft_train, ft_heldout, ft_genre = build_fortunes(pathlib.Path(args.fortunes))

    trec_dev, trec_test = split_dev_test(trec, "trec")
    wn_dev, wn_test = split_dev_test(wn_heldout, "wordnet-domains")
    ft_dev, ft_test = split_dev_test(ft_heldout, "fortunes")
    tasks = {
        "clinc150_unseen": (unseen_dev, unseen_test, clinc_unseen_labels),
        "trec": (trec_dev, trec_test, list(TREC_COARSE.values())),
        "wordnet_domains": (wn_dev, wn_test, WN_HELD_OUT),
        "fortunes": (ft_dev, ft_test, FORTUNE_HELD_OUT),
    }
    # every held-out text (all of TREC, all of a held-out label's texts, not only the subsample)
    held_texts = {norm(s["text"]) for s in unseen_dev + unseen_test + trec + wn_heldout + ft_heldout}

    old = drop_texts(seen + nlupp, held_texts, "train_clinc_nlupp.json")
    new = wn_train + wn_categories + ft_train + ft_genre
    if not args.no_definitions:
        held_labels = [l for (_, _, labels) in tasks.values() for l in labels]
        new += build_definitions(pathlib.Path(args.wordnet), held_labels)
    train = old + drop_texts(new, held_texts, "train.json")
    check_disjoint(train, tasks)

    train = write(out / "train.json", train)
    write(out / "train_clinc_nlupp.json", old)
    write(out / "clinc150_unseen.json", unseen_test)
    write(out / "clinc150_unseen_dev.json", unseen_dev)
    write(out / "clinc150_test.json", all_test)
    write(out / "nlupp.json", nlupp)
    write(out / "heldout" / "trec_dev.json", trec_dev)
    write(out / "heldout" / "trec_test.json", trec_test)
    write(out / "heldout" / "wordnet_domains_dev.json", wn_dev)
    write(out / "heldout" / "wordnet_domains_test.json", wn_test)
    write(out / "heldout" / "fortunes_dev.json", ft_dev)
    write(out / "heldout" / "fortunes_test.json", ft_test)

    by_source = defaultdict(lambda: [0, set()])
    for s in train:
        by_source[s["source"]][0] += 1
        by_source[s["source"]][1].update(s["labels"])
    for name, (n, labels) in sorted(by_source.items()):
        print(f"  train.json source {name}: {n} samples, {len(labels)} labels")
    print(f"  wordnet_domains trained labels: {len(wn_trained)}")


if __name__ == "__main__":
    main()
