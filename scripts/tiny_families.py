"""Tiny random encoders of every supported family, saved as sentence-transformers folders, with
transformers' and sentence-transformers' own outputs beside them: the reference the Rust tests
compare the tch encoders and the exported bundles with (issue #26).

    python scripts/tiny_families.py OUT_DIR [--tokenizer models/all-MiniLM-L6-v2/tokenizer.json]

Writes OUT_DIR/<name>/ (a sentence-transformers folder) for each name of MODELS, and
OUT_DIR/reference.json: per name, the texts and labels, transformers' last hidden state of each
text (real tokens only), sentence-transformers' embeddings of texts and labels, and their cosines.
Everything is seeded and offline; ~10 s on 2 CPU cores.
"""
import argparse
import json
import os
import shutil
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

# name: (family, pooling, normalize, prompts, default prompt name)
MODELS = {
    "bert_cls": ("bert", "cls", True, None, None),
    "bert_mean_prompt": ("bert", "mean", False, {"query": "query: ", "document": "passage: "}, "query"),
    "bert_lasttoken": ("bert", "lasttoken", True, None, None),
    "mpnet": ("mpnet", "mean", True, None, None),
    "xlm_roberta": ("xlm-roberta", "mean", True, None, None),
    "modernbert": ("modernbert", "mean", True, None, None),
}
TEXTS = [
    "how do i reset my online banking password",
    "play some jazz",
    "what will the weather be like in paris tomorrow afternoon, and should i bring an umbrella",
    "book a table for two",
]
LABELS = ["banking", "music", "weather forecast", "restaurant reservation"]
MAX_SEQ_LENGTH = 64


def build(family, out, pooling, normalize, prompts, default_prompt_name, tokenizer_file):
    import torch
    import transformers as T
    from transformers import PreTrainedTokenizerFast
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    torch.manual_seed(0)
    hf_dir = out + "_hf"
    for d in (hf_dir, out):
        shutil.rmtree(d, ignore_errors=True)
    tok = PreTrainedTokenizerFast(tokenizer_file=tokenizer_file, unk_token="[UNK]", pad_token="[PAD]",
                                  cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                  model_max_length=MAX_SEQ_LENGTH)
    c = dict(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
             intermediate_size=128, pad_token_id=tok.pad_token_id)
    if family == "bert":
        model = T.BertModel(T.BertConfig(**c, max_position_embeddings=128))
    elif family == "mpnet":
        model = T.MPNetModel(T.MPNetConfig(**c, max_position_embeddings=130))
    elif family == "xlm-roberta":
        model = T.XLMRobertaModel(T.XLMRobertaConfig(**c, max_position_embeddings=130, type_vocab_size=1))
    elif family == "modernbert":
        # a window of 4 (2 tokens a side) so the test sentences reach past it; 3 layers: global, local, local
        c["num_hidden_layers"] = 3
        model = T.ModernBertModel(T.ModernBertConfig(
            **c, max_position_embeddings=128, local_attention=4, bos_token_id=tok.cls_token_id,
            eos_token_id=tok.sep_token_id, cls_token_id=tok.cls_token_id, sep_token_id=tok.sep_token_id))
    else:
        raise SystemExit(f"unknown family {family}")
    # random LayerNorm weights, so a norm applied in the wrong place cannot hide behind 1 / 0
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name.lower():
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(hf_dir)
    tok.save_pretrained(hf_dir)
    attn = "eager"
    tr = Transformer(hf_dir, max_seq_length=MAX_SEQ_LENGTH, model_kwargs={"attn_implementation": attn})
    modules = [tr, Pooling(tr.get_embedding_dimension(), pooling_mode=pooling)]
    if normalize:
        modules.append(Normalize())
    st = SentenceTransformer(modules=modules, prompts=prompts, default_prompt_name=default_prompt_name, device="cpu")
    st.save(out)
    shutil.rmtree(hf_dir)
    return st


def reference(st, texts, labels):
    import torch

    tr = st[0]
    model, tok = tr.auto_model, tr.tokenizer
    model.eval()
    hidden = []
    with torch.no_grad():
        for t in texts:
            enc = tok([t], return_tensors="pt", truncation=True, max_length=MAX_SEQ_LENGTH)
            enc.pop("token_type_ids", None) if "token_type_ids" not in model.forward.__code__.co_varnames else None
            out = model(**enc).last_hidden_state[0]
            hidden.append({"input_ids": enc["input_ids"][0].tolist(), "last_hidden_state": out.tolist()})
        te = st.encode(texts, convert_to_tensor=True)
        le = st.encode(labels, convert_to_tensor=True)
        cos = torch.nn.functional.cosine_similarity(te[:, None, :], le[None, :, :], dim=-1)
    return {"texts": texts, "labels": labels, "hidden": hidden, "text_embeddings": te.tolist(),
            "label_embeddings": le.tolist(), "cosines": cos.tolist()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--tokenizer", default=os.path.join(os.path.dirname(__file__), "..", "models", "all-MiniLM-L6-v2", "tokenizer.json"))
    ap.add_argument("--only", nargs="*", help="names of MODELS to build (default all)")
    a = ap.parse_args()
    try:
        import sentence_transformers  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        sys.exit(f"error: {e}: run scripts/setup.sh (it installs transformers and sentence-transformers)")
    os.makedirs(a.out, exist_ok=True)
    refs = {}
    for name in a.only or MODELS:
        family, pooling, normalize, prompts, default = MODELS[name]
        st = build(family, os.path.join(a.out, name), pooling, normalize, prompts, default, a.tokenizer)
        refs[name] = reference(st, TEXTS, LABELS)
        refs[name]["family"] = family
    with open(os.path.join(a.out, "reference.json"), "w") as f:
        json.dump(refs, f)
    print(f"wrote {len(refs)} models and reference.json to {a.out}")


if __name__ == "__main__":
    main()
