//! ModernBERT (`transformers/models/modernbert/modeling_modernbert.py`): pre-norm layers without
//! biases, rotary positions on queries and keys, every `global_attn_every_n_layers`-th layer global
//! and the others within a sliding window of `local_attention / 2` tokens a side, gated GELU MLP.

use zsc_core::manifest::onnx_io;
use zsc_core::EncoderConfig;

use super::{GraphBuilder, MASK_FILL};
use crate::onnx::{data_type, AttributeProto};
use crate::quantize::LinearRole;
use crate::weights::Weights;
use crate::ExportError;

/// `cos` and `sin` `[T, head_size]` of the rotary embedding for one base `theta`:
/// `inv_freq = theta^(-2k/d)`, angles `t * inv_freq` repeated twice along the last axis.
fn rotary_tables(g: &mut GraphBuilder, positions: &str, theta: f64, head_size: usize, tag: &str) -> (String, String) {
    let inv_freq: Vec<f32> = (0..head_size / 2).map(|k| (1.0 / theta.powf((2 * k) as f64 / head_size as f64)) as f32).collect();
    let inv: Vec<f32> = inv_freq.iter().chain(inv_freq.iter()).copied().collect();
    let inv = g.f32_tensor(&format!("rotary_{tag}.inv_freq"), &[1, head_size], &inv);
    let angles = g.op("Mul", &format!("/rotary_{tag}/Mul"), &[positions, &inv], vec![]); // [T,1] x [1,d]
    let cos = g.op("Cos", &format!("/rotary_{tag}/Cos"), &[&angles], vec![]);
    let sin = g.op("Sin", &format!("/rotary_{tag}/Sin"), &[&angles], vec![]);
    (cos, sin)
}

/// `x * cos + rotate_half(x) * sin`, `rotate_half(x) = concat(-x[.., d/2:], x[.., :d/2])`.
fn rotate(g: &mut GraphBuilder, x: &str, cos: &str, sin: &str, head_size: usize, node: &str) -> String {
    let [x1, x2] = g.split_last(&format!("{node}/Split"), x, [head_size / 2; 2]);
    let neg = g.op("Neg", &format!("{node}/Neg"), &[&x2], vec![]);
    let rot = g.op("Concat", &format!("{node}/Concat"), &[&neg, &x1], vec![AttributeProto::int("axis", -1)]);
    let a = g.op("Mul", &format!("{node}/Mul_cos"), &[x, cos], vec![]);
    let b = g.op("Mul", &format!("{node}/Mul_sin"), &[&rot, sin], vec![]);
    g.op("Add", &format!("{node}/Add"), &[&a, &b], vec![])
}

/// The encoder's last hidden state `[batch, sequence, hidden]` (after `final_norm`).
pub(super) fn encoder(g: &mut GraphBuilder, cfg: &EncoderConfig, w: &Weights) -> Result<String, ExportError> {
    let (h, inter, nh, hs) = (cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads, cfg.head_size());
    let eps = cfg.layer_norm_eps as f32;
    let nb = cfg.norm_bias;
    let one = g.f32_scalar("const_one", 1.0);
    let half = g.f32_scalar("const_half", 0.5);
    let sqrt2 = g.f32_scalar("const_sqrt2", std::f32::consts::SQRT_2);
    let mask_fill = g.f32_scalar("const_mask_fill", MASK_FILL);
    let zero_f = g.f32_scalar("const_zero_f32", 0.0);
    let scale = g.f32_scalar("const_sqrt_head_size", (hs as f32).sqrt());
    let axes_0 = g.i64_tensor("const_axes_0", &[0]);
    let axes_1 = g.i64_tensor("const_axes_1", &[1]);
    let axes_2 = g.i64_tensor("const_axes_2", &[2]);
    let heads_shape = g.i64_tensor("const_heads_shape", &[0, 0, nh as i64, hs as i64]);
    let merged_shape = g.i64_tensor("const_merged_shape", &[0, 0, h as i64]);

    let tok = g.weight("embeddings.tok_embeddings.weight", w.get("embeddings.tok_embeddings.weight", &[cfg.vocab_size, h])?);
    let x = g.op("Gather", "/embeddings/tok_embeddings/Gather", &[&tok, onnx_io::INPUT_IDS], vec![]);
    let mut hidden = g.layer_norm_with_bias(w, "embeddings.norm", "/embeddings/norm", &x, h, eps, nb)?;

    // Positions 0..T as a float column, and the key-minus-query distances for the window.
    let zero = g.i64_scalar("const_zero", 0);
    let step = g.i64_scalar("const_one_i64", 1);
    let ids_shape = g.op("Shape", "/positions/Shape", &[onnx_io::INPUT_IDS], vec![]);
    let seq_index = g.i64_scalar("const_index_1", 1);
    let seq_len = g.op("Gather", "/positions/Gather_seq_len", &[&ids_shape, &seq_index], vec![AttributeProto::int("axis", 0)]);
    let range = g.op("Range", "/positions/Range", &[&zero, &seq_len, &step], vec![]);
    let column = g.op("Unsqueeze", "/positions/Unsqueeze_column", &[&range, &axes_1], vec![]); // [T,1]
    let row = g.op("Unsqueeze", "/positions/Unsqueeze_row", &[&range, &axes_0], vec![]); // [1,T]
    let column_f = g.op("Cast", "/positions/Cast", &[&column], vec![AttributeProto::int("to", data_type::FLOAT as i64)]);
    let (global_cos, global_sin) = rotary_tables(g, &column_f, cfg.rope_theta(true), hs, "global");
    let (local_cos, local_sin) = rotary_tables(g, &column_f, cfg.rope_theta(false), hs, "local");

    // Masks [batch, 1, T, T] as 0 / finfo.min: padding for the global layers; padding or outside the
    // window for the local ones (Min keeps one finfo.min where both apply: never -inf).
    let m = g.op("Unsqueeze", "/mask/Unsqueeze", &[onnx_io::ATTENTION_MASK, &axes_1], vec![]);
    let m = g.op("Unsqueeze", "/mask/Unsqueeze_1", &[&m, &axes_2], vec![]);
    let m = g.op("Cast", "/mask/Cast", &[&m], vec![AttributeProto::int("to", data_type::FLOAT as i64)]);
    let m = g.op("Sub", "/mask/Sub", &[&one, &m], vec![]);
    let global_mask = g.op("Mul", "/mask/Mul", &[&m, &mask_fill], vec![]);
    let distance = g.op("Sub", "/mask/window/Sub", &[&row, &column], vec![]);
    let distance = g.op("Abs", "/mask/window/Abs", &[&distance], vec![]);
    let reach = g.i64_scalar("const_window_reach", (cfg.local_attention / 2) as i64);
    let inside = g.op("LessOrEqual", "/mask/window/LessOrEqual", &[&distance, &reach], vec![]);
    let window = g.op("Where", "/mask/window/Where", &[&inside, &zero_f, &mask_fill], vec![]);
    let local_mask = g.op("Min", "/mask/window/Min", &[&global_mask, &window], vec![]);

    for l in 0..cfg.num_hidden_layers {
        let p = format!("layers.{l}");
        let n = format!("/layers.{l}");
        let (cos, sin, mask) =
            if cfg.is_global_layer(l) { (&global_cos, &global_sin, &global_mask) } else { (&local_cos, &local_sin, &local_mask) };
        let x = hidden.clone();
        let normed = if l == 0 {
            x.clone()
        } else {
            g.layer_norm_with_bias(w, &format!("{p}.attn_norm"), &format!("{n}/attn_norm"), &x, h, eps, nb)?
        };
        let qkv = g.linear_with_bias(
            w,
            LinearRole::AttentionIn,
            &format!("{p}.attn.Wqkv"),
            &format!("{n}/attn/Wqkv"),
            &normed,
            h,
            3 * h,
            cfg.attention_bias,
        )?;
        let [q, k, v] = g.split_last(&format!("{n}/attn/Split_qkv"), &qkv, [h; 3]);
        let heads = |g: &mut GraphBuilder, t: &str, tag: &str| {
            let t = g.op("Reshape", &format!("{n}/attn/Reshape_{tag}"), &[t, &heads_shape], vec![]);
            g.op("Transpose", &format!("{n}/attn/Transpose_{tag}"), &[&t], vec![AttributeProto::ints("perm", &[0, 2, 1, 3])])
        };
        let q = heads(g, &q, "q");
        let k = heads(g, &k, "k");
        let v = heads(g, &v, "v");
        let q = rotate(g, &q, cos, sin, hs, &format!("{n}/attn/rotary_q"));
        let k = rotate(g, &k, cos, sin, hs, &format!("{n}/attn/rotary_k"));
        let kt = g.op("Transpose", &format!("{n}/attn/Transpose_kt"), &[&k], vec![AttributeProto::ints("perm", &[0, 1, 3, 2])]);
        let scores = g.op("MatMul", &format!("{n}/attn/MatMul_qk"), &[&q, &kt], vec![]);
        let scores = g.op("Div", &format!("{n}/attn/Div"), &[&scores, &scale], vec![]);
        let scores = g.op("Add", &format!("{n}/attn/Add_mask"), &[&scores, mask], vec![]);
        let probs = g.op("Softmax", &format!("{n}/attn/Softmax"), &[&scores], vec![AttributeProto::int("axis", -1)]);
        let ctx = g.op("MatMul", &format!("{n}/attn/MatMul_v"), &[&probs, &v], vec![]);
        let ctx =
            g.op("Transpose", &format!("{n}/attn/Transpose_ctx"), &[&ctx], vec![AttributeProto::ints("perm", &[0, 2, 1, 3])]);
        let ctx = g.op("Reshape", &format!("{n}/attn/Reshape_ctx"), &[&ctx, &merged_shape], vec![]);
        let attn = g.linear_with_bias(
            w,
            LinearRole::AttentionOut,
            &format!("{p}.attn.Wo"),
            &format!("{n}/attn/Wo"),
            &ctx,
            h,
            h,
            cfg.attention_bias,
        )?;
        let x = g.op("Add", &format!("{n}/Add_attn"), &[&x, &attn], vec![]);
        // MLP: Wi -> (input, gate) halves, GELU(input) * gate, Wo.
        let normed = g.layer_norm_with_bias(w, &format!("{p}.mlp_norm"), &format!("{n}/mlp_norm"), &x, h, eps, nb)?;
        let wi = g.linear_with_bias(
            w,
            LinearRole::FfnIn,
            &format!("{p}.mlp.Wi"),
            &format!("{n}/mlp/Wi"),
            &normed,
            h,
            2 * inter,
            cfg.mlp_bias,
        )?;
        let [input, gate] = g.split_last(&format!("{n}/mlp/Split"), &wi, [inter; 2]);
        let t = g.op("Div", &format!("{n}/mlp/gelu/Div"), &[&input, &sqrt2], vec![]);
        let t = g.op("Erf", &format!("{n}/mlp/gelu/Erf"), &[&t], vec![]);
        let t = g.op("Add", &format!("{n}/mlp/gelu/Add"), &[&t, &one], vec![]);
        let t = g.op("Mul", &format!("{n}/mlp/gelu/Mul"), &[&input, &t], vec![]);
        let act = g.op("Mul", &format!("{n}/mlp/gelu/Mul_1"), &[&t, &half], vec![]);
        let gated = g.op("Mul", &format!("{n}/mlp/Mul_gate"), &[&act, &gate], vec![]);
        let o = g.linear_with_bias(
            w,
            LinearRole::FfnOut,
            &format!("{p}.mlp.Wo"),
            &format!("{n}/mlp/Wo"),
            &gated,
            inter,
            h,
            cfg.mlp_bias,
        )?;
        hidden = g.op("Add", &format!("{n}/Add_mlp"), &[&x, &o], vec![]);
    }
    g.layer_norm_with_bias(w, "final_norm", "/final_norm", &hidden, h, eps, nb)
}
