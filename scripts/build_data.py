#!/usr/bin/env python3
"""Build data/ from ../shared/datasets (CLINC150 and NLU++, both CC BY). Re-runnable, stdlib only.

Outputs (all JSON lists of {"text": ..., "labels": [...]}):
  data/train.json           default training file: CLINC150 in-scope utterances of the 7 *seen*
                            domains (train+val+test lists) + all NLU++ banking/hotels examples
                            (multi-label). The trainer splits it seeded, sample-level.
  data/clinc150_unseen.json CLINC150 test utterances of the 3 held-out domains (never trained on):
                            the zero-shot check on unseen labels.
  data/clinc150_unseen_dev.json CLINC150 *val* utterances of the same 3 held-out domains: a
                            separate zero-shot dev set (the trainer's `probe_data`, recipe choices),
                            so the reported numbers on clinc150_unseen.json are never tuned on.
  data/clinc150_test.json   CLINC150 test utterances of all 10 domains (150 intents).
  data/nlupp.json           NLU++ alone (multi-label).
"""
import argparse
import json
import pathlib

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


def clinc_label(intent: str) -> str:
    return intent.replace("_", " ")


def nlupp_label(intent: str) -> str:
    return NLUPP_LABELS.get(intent, intent.replace("_", " "))


def write(path: pathlib.Path, samples):
    lines = ",\n".join(json.dumps(s, ensure_ascii=False) for s in samples)
    path.write_text("[\n" + lines + "\n]\n", encoding="utf-8")
    n_labels = len({l for s in samples for l in s["labels"]})
    print(f"wrote {path}: {len(samples)} samples, {n_labels} labels")


def main():
    root = pathlib.Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default=str(root.parent / "shared" / "datasets"))
    ap.add_argument("--out", default=str(root / "data"))
    args = ap.parse_args()
    src, out = pathlib.Path(args.datasets), pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    clinc = json.loads((src / "clinc150" / "data_full.json").read_text())
    domains = json.loads((src / "clinc150" / "domains.json").read_text())
    held_out = {i for d in HELD_OUT_DOMAINS for i in domains[d]}

    seen, unseen_test, unseen_dev, all_test = [], [], [], []
    for part in ("train", "val", "test"):
        for text, intent in clinc[part]:
            s = {"text": text.strip(), "labels": [clinc_label(intent)]}
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
                labels = list(dict.fromkeys(nlupp_label(i) for i in intents))
                nlupp.append({"text": ex["text"].strip(), "labels": labels})

    write(out / "train.json", seen + nlupp)
    write(out / "clinc150_unseen.json", unseen_test)
    write(out / "clinc150_unseen_dev.json", unseen_dev)
    write(out / "clinc150_test.json", all_test)
    write(out / "nlupp.json", nlupp)


if __name__ == "__main__":
    main()
