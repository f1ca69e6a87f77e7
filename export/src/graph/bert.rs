//! BERT, RoBERTa / XLM-RoBERTa and MPNet encoders: one post-LayerNorm layer stack, three ways of
//! giving tokens their positions (`transformers/models/{bert,roberta,mpnet}/modeling_*.py`).
//!
//! The node patterns follow what PyTorch's exporter emits for Hugging Face BERT (MatMul + bias Add,
//! Reshape with `[0, 0, heads, head_size]`, the `(1 - mask) * min` additive mask, the erf GELU,
//! LayerNormalization), because ONNX Runtime's graph optimiser recognises exactly those patterns
//! and fuses them (SkipLayerNormalization, BiasGelu / Gelu, Attention).

use zsc_core::encoder_config::mpnet_relative_buckets;
use zsc_core::manifest::onnx_io;
use zsc_core::{EncoderConfig, Family};

use super::{GraphBuilder, MASK_FILL};
use crate::onnx::{data_type, AttributeProto};
use crate::quantize::LinearRole;
use crate::weights::Weights;
use crate::ExportError;

/// Weight names of one layer's attention, which MPNet names differently.
struct AttentionNames {
    q: &'static str,
    k: &'static str,
    v: &'static str,
    o: &'static str,
    norm: &'static str,
}

const BERT_NAMES: AttentionNames = AttentionNames {
    q: "attention.self.query",
    k: "attention.self.key",
    v: "attention.self.value",
    o: "attention.output.dense",
    norm: "attention.output.LayerNorm",
};
const MPNET_NAMES: AttentionNames = AttentionNames {
    q: "attention.attn.q",
    k: "attention.attn.k",
    v: "attention.attn.v",
    o: "attention.attn.o",
    norm: "attention.LayerNorm",
};

/// The encoder's last hidden state `[batch, sequence, hidden]`.
pub(super) fn encoder(g: &mut GraphBuilder, cfg: &EncoderConfig, w: &Weights) -> Result<String, ExportError> {
    let family = cfg.family();
    let (h, inter, nh, hs) = (cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads, cfg.head_size());
    let eps = cfg.layer_norm_eps as f32;
    let one = g.f32_scalar("const_one", 1.0);
    let half = g.f32_scalar("const_half", 0.5);
    let sqrt2 = g.f32_scalar("const_sqrt2", std::f32::consts::SQRT_2);
    let mask_fill = g.f32_scalar("const_mask_fill", MASK_FILL);
    let scale = g.f32_scalar("const_sqrt_head_size", (hs as f32).sqrt());
    let axes_1 = g.i64_tensor("const_axes_1", &[1]);
    let axes_2 = g.i64_tensor("const_axes_2", &[2]);
    let heads_shape = g.i64_tensor("const_heads_shape", &[0, 0, nh as i64, hs as i64]);
    let merged_shape = g.i64_tensor("const_merged_shape", &[0, 0, h as i64]);

    let mut hidden = embeddings(g, cfg, w)?;

    // Additive attention mask [batch, 1, 1, sequence]: 0 for real tokens, finfo.min for padding.
    let m = g.op("Unsqueeze", "/mask/Unsqueeze", &[onnx_io::ATTENTION_MASK, &axes_1], vec![]);
    let m = g.op("Unsqueeze", "/mask/Unsqueeze_1", &[&m, &axes_2], vec![]);
    let m = g.op("Cast", "/mask/Cast", &[&m], vec![AttributeProto::int("to", data_type::FLOAT as i64)]);
    let m = g.op("Sub", "/mask/Sub", &[&one, &m], vec![]);
    let mut mask = g.op("Mul", "/mask/Mul", &[&m, &mask_fill], vec![]);
    let names = if family == Family::Mpnet {
        // MPNet adds one relative position bias [1, heads, T, T] to every layer's scores, before the mask
        let bias = mpnet_position_bias(g, cfg, w)?;
        mask = g.op("Add", "/encoder/Add_position_bias", &[&bias, &mask], vec![]);
        MPNET_NAMES
    } else {
        BERT_NAMES
    };

    for l in 0..cfg.num_hidden_layers {
        let p = format!("encoder.layer.{l}");
        let n = format!("/encoder/layer.{l}");
        let x = hidden.clone();
        // Self-attention.
        let q =
            g.linear(w, LinearRole::AttentionIn, &format!("{p}.{}", names.q), &format!("{n}/attention/self/query"), &x, h, h)?;
        let k =
            g.linear(w, LinearRole::AttentionIn, &format!("{p}.{}", names.k), &format!("{n}/attention/self/key"), &x, h, h)?;
        let v =
            g.linear(w, LinearRole::AttentionIn, &format!("{p}.{}", names.v), &format!("{n}/attention/self/value"), &x, h, h)?;
        let q = g.op("Reshape", &format!("{n}/attention/self/Reshape_q"), &[&q, &heads_shape], vec![]);
        let q = g.op(
            "Transpose",
            &format!("{n}/attention/self/Transpose_q"),
            &[&q],
            vec![AttributeProto::ints("perm", &[0, 2, 1, 3])],
        );
        let k = g.op("Reshape", &format!("{n}/attention/self/Reshape_k"), &[&k, &heads_shape], vec![]);
        let k = g.op(
            "Transpose",
            &format!("{n}/attention/self/Transpose_k"),
            &[&k],
            vec![AttributeProto::ints("perm", &[0, 2, 3, 1])],
        );
        let v = g.op("Reshape", &format!("{n}/attention/self/Reshape_v"), &[&v, &heads_shape], vec![]);
        let v = g.op(
            "Transpose",
            &format!("{n}/attention/self/Transpose_v"),
            &[&v],
            vec![AttributeProto::ints("perm", &[0, 2, 1, 3])],
        );
        let scores = g.op("MatMul", &format!("{n}/attention/self/MatMul_qk"), &[&q, &k], vec![]);
        let scores = g.op("Div", &format!("{n}/attention/self/Div"), &[&scores, &scale], vec![]);
        let scores = g.op("Add", &format!("{n}/attention/self/Add_mask"), &[&scores, &mask], vec![]);
        let probs = g.op("Softmax", &format!("{n}/attention/self/Softmax"), &[&scores], vec![AttributeProto::int("axis", -1)]);
        let ctx = g.op("MatMul", &format!("{n}/attention/self/MatMul_v"), &[&probs, &v], vec![]);
        let ctx = g.op(
            "Transpose",
            &format!("{n}/attention/self/Transpose_ctx"),
            &[&ctx],
            vec![AttributeProto::ints("perm", &[0, 2, 1, 3])],
        );
        let ctx = g.op("Reshape", &format!("{n}/attention/self/Reshape_ctx"), &[&ctx, &merged_shape], vec![]);
        let attn = g.linear(
            w,
            LinearRole::AttentionOut,
            &format!("{p}.{}", names.o),
            &format!("{n}/attention/output/dense"),
            &ctx,
            h,
            h,
        )?;
        let res = g.op("Add", &format!("{n}/attention/output/Add_residual"), &[&attn, &x], vec![]);
        let x = g.layer_norm(w, &format!("{p}.{}", names.norm), &format!("{n}/attention/output/LayerNorm"), &res, h, eps)?;
        // Feed-forward with the exact (erf) GELU: x * 0.5 * (1 + erf(x / sqrt 2)).
        let i =
            g.linear(w, LinearRole::FfnIn, &format!("{p}.intermediate.dense"), &format!("{n}/intermediate/dense"), &x, h, inter)?;
        let t = g.op("Div", &format!("{n}/intermediate/gelu/Div"), &[&i, &sqrt2], vec![]);
        let t = g.op("Erf", &format!("{n}/intermediate/gelu/Erf"), &[&t], vec![]);
        let t = g.op("Add", &format!("{n}/intermediate/gelu/Add"), &[&t, &one], vec![]);
        let t = g.op("Mul", &format!("{n}/intermediate/gelu/Mul"), &[&i, &t], vec![]);
        let act = g.op("Mul", &format!("{n}/intermediate/gelu/Mul_1"), &[&t, &half], vec![]);
        let o = g.linear(w, LinearRole::FfnOut, &format!("{p}.output.dense"), &format!("{n}/output/dense"), &act, inter, h)?;
        let res = g.op("Add", &format!("{n}/output/Add_residual"), &[&o, &x], vec![]);
        hidden = g.layer_norm(w, &format!("{p}.output.LayerNorm"), &format!("{n}/output/LayerNorm"), &res, h, eps)?;
    }
    Ok(hidden)
}

/// Word + position (+ token type) embeddings, then LayerNorm.
fn embeddings(g: &mut GraphBuilder, cfg: &EncoderConfig, w: &Weights) -> Result<String, ExportError> {
    let h = cfg.hidden_size;
    let word = g.weight("embeddings.word_embeddings.weight", w.get("embeddings.word_embeddings.weight", &[cfg.vocab_size, h])?);
    let pos = g.weight(
        "embeddings.position_embeddings.weight",
        w.get("embeddings.position_embeddings.weight", &[cfg.max_position_embeddings, h])?,
    );
    let word_emb = g.op("Gather", "/embeddings/word_embeddings/Gather", &[&word, onnx_io::INPUT_IDS], vec![]);
    let positions = match cfg.family() {
        Family::Bert => {
            // positions = position_ids[:, :sequence] (a constant [1, max_positions] row sliced to the
            // input's length), as Hugging Face's exporter writes it: dynamic in the sequence axis, and
            // the pattern the ONNX Runtime transformers optimiser fuses into EmbedLayerNormalization.
            let axes_0 = g.i64_tensor("const_axes_0", &[0]);
            let axes_1 = g.i64_tensor("const_axes_1_embeddings", &[1]);
            let position_ids: Vec<i64> = (0..cfg.max_position_embeddings as i64).collect();
            let position_ids = g.i64_tensor_2d("embeddings.position_ids", &[1, cfg.max_position_embeddings], &position_ids);
            let slice_starts = g.i64_tensor("const_zero_1d", &[0]);
            let ids_shape = g.op("Shape", "/embeddings/Shape", &[onnx_io::INPUT_IDS], vec![]);
            let seq_index = g.i64_scalar("const_index_1", 1);
            let seq_len =
                g.op("Gather", "/embeddings/Gather_seq_len", &[&ids_shape, &seq_index], vec![AttributeProto::int("axis", 0)]);
            let seq_end = g.op("Unsqueeze", "/embeddings/Unsqueeze_seq_len", &[&seq_len, &axes_0], vec![]);
            g.op("Slice", "/embeddings/Slice_position_ids", &[&position_ids, &slice_starts, &seq_end, &axes_1, &axes_1], vec![])
        }
        _ => {
            // RoBERTa and MPNet: real tokens count from pad_token_id + 1, padding sits at pad_token_id
            // (`create_position_ids_from_input_ids`, with the mask standing for `input_ids != pad`)
            let offset = g.i64_scalar("const_position_padding_idx", cfg.position_offset() as i64 - 1);
            let axis = g.i64_scalar("const_cumsum_axis", 1);
            let count = g.op("CumSum", "/embeddings/CumSum_positions", &[onnx_io::ATTENTION_MASK, &axis], vec![]);
            let count = g.op("Mul", "/embeddings/Mul_positions", &[&count, onnx_io::ATTENTION_MASK], vec![]);
            g.op("Add", "/embeddings/Add_padding_idx", &[&count, &offset], vec![])
        }
    };
    let pos_emb = g.op("Gather", "/embeddings/position_embeddings/Gather", &[&pos, &positions], vec![]);
    let sum = if cfg.family().uses_token_types() {
        let tt = g.weight(
            "embeddings.token_type_embeddings.weight",
            w.get("embeddings.token_type_embeddings.weight", &[cfg.type_vocab_size, h])?,
        );
        let tt_emb = g.op("Gather", "/embeddings/token_type_embeddings/Gather", &[&tt, onnx_io::TOKEN_TYPE_IDS], vec![]);
        g.op("Add", "/embeddings/Add", &[&word_emb, &tt_emb], vec![])
    } else {
        word_emb
    };
    let sum = g.op("Add", "/embeddings/Add_1", &[&sum, &pos_emb], vec![]);
    g.layer_norm(w, "embeddings.LayerNorm", "/embeddings/LayerNorm", &sum, h, cfg.layer_norm_eps as f32)
}

/// MPNet's relative position bias `[1, heads, T, T]`: bucket of `key - query` (precomputed for
/// every relative position up to `max_position_embeddings`), looked up in
/// `encoder.relative_attention_bias.weight` `[buckets, heads]`.
fn mpnet_position_bias(g: &mut GraphBuilder, cfg: &EncoderConfig, w: &Weights) -> Result<String, ExportError> {
    let n = cfg.max_position_embeddings;
    let name = "encoder.relative_attention_bias.weight";
    let table = g.weight(name, w.get(name, &[cfg.relative_attention_num_buckets, cfg.num_attention_heads])?);
    let buckets = g.i64_tensor("encoder.relative_position_buckets", &mpnet_relative_buckets(n));
    let zero = g.i64_scalar("const_zero", 0);
    let step = g.i64_scalar("const_one_i64", 1);
    let ids_shape = g.op("Shape", "/encoder/position_bias/Shape", &[onnx_io::INPUT_IDS], vec![]);
    let seq_index = g.i64_scalar("const_index_1_bias", 1);
    let seq_len =
        g.op("Gather", "/encoder/position_bias/Gather_seq_len", &[&ids_shape, &seq_index], vec![AttributeProto::int("axis", 0)]);
    let range = g.op("Range", "/encoder/position_bias/Range", &[&zero, &seq_len, &step], vec![]);
    let axes_0 = g.i64_tensor("const_axes_0_bias", &[0]);
    let axes_1 = g.i64_tensor("const_axes_1_bias", &[1]);
    let keys = g.op("Unsqueeze", "/encoder/position_bias/Unsqueeze_keys", &[&range, &axes_0], vec![]); // [1, T]
    let queries = g.op("Unsqueeze", "/encoder/position_bias/Unsqueeze_queries", &[&range, &axes_1], vec![]); // [T, 1]
    let relative = g.op("Sub", "/encoder/position_bias/Sub", &[&keys, &queries], vec![]);
    let offset = g.i64_scalar("const_relative_offset", n as i64 - 1);
    let index = g.op("Add", "/encoder/position_bias/Add_offset", &[&relative, &offset], vec![]);
    let bucket = g.op("Gather", "/encoder/position_bias/Gather_bucket", &[&buckets, &index], vec![]); // [T, T]
    let bias = g.op("Gather", "/encoder/position_bias/Gather_bias", &[&table, &bucket], vec![]); // [T, T, heads]
    let bias = g.op("Transpose", "/encoder/position_bias/Transpose", &[&bias], vec![AttributeProto::ints("perm", &[2, 0, 1])]);
    Ok(g.op("Unsqueeze", "/encoder/position_bias/Unsqueeze", &[&bias, &axes_0], vec![]))
}
