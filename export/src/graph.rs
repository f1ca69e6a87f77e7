//! The BERT encoder as an ONNX graph, node by node, from the safetensors weights.
//!
//! The node patterns follow what PyTorch's exporter emits for Hugging Face BERT (MatMul + bias Add,
//! Reshape with `[0, 0, heads, head_size]`, the `(1 - mask) * min` additive mask, the erf GELU,
//! LayerNormalization), because ONNX Runtime's graph optimiser recognises exactly those patterns
//! and fuses them (SkipLayerNormalization, BiasGelu / Gelu, Attention).

use std::collections::HashMap;

use zsc_core::manifest::onnx_io;
use zsc_core::Quantization;

use crate::onnx::{
    data_type, tensor_value_info, AttributeProto, Dim, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, IR_VERSION,
};
use crate::quantize::PerColumnInt8;
use crate::weights::{BertConfig, Tensor, Weights};
use crate::ExportError;

/// What to put on top of the encoder's last hidden state.
#[derive(Debug, Clone, PartialEq)]
pub enum GraphHead {
    /// Output `last_hidden_state` `[batch, sequence, hidden]` (bi-encoder, poly-encoder).
    HiddenState,
    /// Output `token_embeddings` = L2normalize(H @ W^T), W = `colbert.proj.weight` `[dim, hidden]`.
    ColbertProjection { dim: usize },
}

/// HF BERT's additive mask value for padded keys: `torch.finfo(float32).min`.
const MASK_FILL: f32 = f32::MIN;
/// F.normalize's eps.
const L2_EPS: f32 = 1e-12;

/// Appends nodes and initializers with unique names.
struct GraphBuilder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    /// How [`GraphBuilder::linear`] writes the encoder's linear layers.
    quantization: Quantization,
    /// int8: the `DynamicQuantizeLinear` outputs (x_q, x_scale, x_zero) of each value already
    /// quantized, so the query/key/value layers quantize their shared input once.
    quantized_inputs: HashMap<String, [String; 3]>,
}

impl GraphBuilder {
    fn new(quantization: Quantization) -> Self {
        GraphBuilder { nodes: Vec::new(), initializers: Vec::new(), quantization, quantized_inputs: HashMap::new() }
    }

    /// Adds a node named `name` with one output called `name` (node and value names share a namespace
    /// only by convention here; all names are unique paths like `/encoder/layer.0/attention/Softmax`).
    fn op(&mut self, op_type: &str, name: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        let output = format!("{name}_output_0");
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.clone()],
            name: name.to_string(),
            op_type: op_type.to_string(),
            attribute,
            ..Default::default()
        });
        output
    }

    /// Like [`Self::op`] with several outputs, named `{name}_output_{k}`.
    fn op_multi<const N: usize>(&mut self, op_type: &str, name: &str, inputs: &[&str]) -> [String; N] {
        let outputs: [String; N] = std::array::from_fn(|k| format!("{name}_output_{k}"));
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.to_vec(),
            name: name.to_string(),
            op_type: op_type.to_string(),
            ..Default::default()
        });
        outputs
    }

    /// Like [`Self::op`] but the single output gets an explicit name (graph outputs).
    fn op_named_output(&mut self, op_type: &str, name: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            name: name.to_string(),
            op_type: op_type.to_string(),
            attribute,
            ..Default::default()
        });
    }

    fn f32_tensor(&mut self, name: &str, shape: &[usize], data: &[f32]) -> String {
        self.initializers.push(TensorProto {
            dims: shape.iter().map(|&d| d as i64).collect(),
            data_type: data_type::FLOAT,
            name: name.to_string(),
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name.to_string()
    }

    fn weight(&mut self, name: &str, t: &Tensor) -> String {
        self.f32_tensor(name, &t.shape, &t.data)
    }

    fn f32_scalar(&mut self, name: &str, v: f32) -> String {
        self.f32_tensor(name, &[], &[v])
    }

    fn i8_tensor(&mut self, name: &str, shape: &[usize], data: &[i8]) -> String {
        self.initializers.push(TensorProto {
            dims: shape.iter().map(|&d| d as i64).collect(),
            data_type: data_type::INT8,
            name: name.to_string(),
            raw_data: data.iter().map(|&v| v as u8).collect(),
            ..Default::default()
        });
        name.to_string()
    }

    fn i64_tensor(&mut self, name: &str, data: &[i64]) -> String {
        self.initializers.push(TensorProto {
            dims: vec![data.len() as i64],
            data_type: data_type::INT64,
            name: name.to_string(),
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name.to_string()
    }

    fn i64_tensor_2d(&mut self, name: &str, shape: &[usize], data: &[i64]) -> String {
        self.initializers.push(TensorProto {
            dims: shape.iter().map(|&d| d as i64).collect(),
            data_type: data_type::INT64,
            name: name.to_string(),
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name.to_string()
    }

    fn i64_scalar(&mut self, name: &str, v: i64) -> String {
        self.initializers.push(TensorProto {
            dims: vec![],
            data_type: data_type::INT64,
            name: name.to_string(),
            raw_data: v.to_le_bytes().to_vec(),
            ..Default::default()
        });
        name.to_string()
    }

    /// `x @ W^T + b` for a Hugging Face Linear `prefix.weight` `[out, in]` / `prefix.bias` `[out]`.
    fn linear(&mut self, w: &Weights, prefix: &str, node: &str, x: &str, d_in: usize, d_out: usize) -> Result<String, ExportError> {
        let weight = w.get(&format!("{prefix}.weight"), &[d_out, d_in])?.transposed_2d();
        let bias = w.get(&format!("{prefix}.bias"), &[d_out])?;
        let mm = match self.quantization {
            Quantization::None => {
                let wt = self.weight(&format!("{prefix}.weight_t"), &weight);
                self.op("MatMul", &format!("{node}/MatMul"), &[x, &wt], vec![])
            }
            Quantization::Int8 => self.int8_matmul(prefix, node, x, &weight),
        };
        // Bias second and a 1-D initializer: the shape ONNX Runtime folds into MatMulIntegerToFloat.
        let b = self.weight(&format!("{prefix}.bias"), bias);
        Ok(self.op("Add", &format!("{node}/Add"), &[&mm, &b], vec![]))
    }

    /// `x @ W` with W `[in, out]` as per-column int8 and x quantized to uint8 per call, the
    /// pattern of [`crate::quantize`]: `Cast(MatMulInteger(x_q, W_q, x_zero, W_zero)) * (x_scale * W_scale)`.
    fn int8_matmul(&mut self, prefix: &str, node: &str, x: &str, weight: &Tensor) -> String {
        let q = PerColumnInt8::quantize(weight);
        let w_q = self.i8_tensor(&format!("{prefix}.weight_t_quantized"), &q.shape, &q.values);
        let w_scale = self.f32_tensor(&format!("{prefix}.weight_t_scale"), &[q.shape[1]], &q.scales);
        let w_zero = self.i8_tensor(&format!("{prefix}.weight_t_zero_point"), &[q.shape[1]], &vec![0; q.shape[1]]);
        let [x_q, x_scale, x_zero] = match self.quantized_inputs.get(x) {
            Some(outputs) => outputs.clone(),
            None => {
                let outputs = self.op_multi("DynamicQuantizeLinear", &format!("{node}/DynamicQuantizeLinear"), &[x]);
                self.quantized_inputs.insert(x.to_string(), outputs.clone());
                outputs
            }
        };
        let acc = self.op("MatMulInteger", &format!("{node}/MatMulInteger"), &[&x_q, &w_q, &x_zero, &w_zero], vec![]);
        let acc = self.op("Cast", &format!("{node}/Cast"), &[&acc], vec![AttributeProto::int("to", data_type::FLOAT as i64)]);
        let scale = self.op("Mul", &format!("{node}/Mul_scales"), &[&x_scale, &w_scale], vec![]);
        self.op("Mul", &format!("{node}/Mul_dequantize"), &[&acc, &scale], vec![])
    }

    fn layer_norm(&mut self, w: &Weights, prefix: &str, node: &str, x: &str, h: usize, eps: f32) -> Result<String, ExportError> {
        let gamma = self.weight(&format!("{prefix}.weight"), w.get(&format!("{prefix}.weight"), &[h])?);
        let beta = self.weight(&format!("{prefix}.bias"), w.get(&format!("{prefix}.bias"), &[h])?);
        Ok(self.op(
            "LayerNormalization",
            &format!("{node}/LayerNormalization"),
            &[x, &gamma, &beta],
            vec![AttributeProto::int("axis", -1), AttributeProto::float("epsilon", eps)],
        ))
    }
}

/// Builds the complete model: inputs `input_ids`, `attention_mask`, `token_type_ids` (int64
/// `[batch, sequence]`), one output per [`GraphHead`]. With [`Quantization::Int8`] the six linear
/// layers of every encoder layer (query, key, value, attention output, FFN in and out) get int8
/// weights ([`crate::quantize`]); embeddings, LayerNorms, the attention products and the ColBERT
/// projection stay f32.
pub fn build_bert_model(
    cfg: &BertConfig,
    w: &Weights,
    head: &GraphHead,
    opset: i64,
    quantization: Quantization,
    metadata: Vec<(String, String)>,
) -> Result<ModelProto, ExportError> {
    let (h, inter, nh, hs) = (cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads, cfg.head_size());
    let eps = cfg.layer_norm_eps as f32;
    let mut g = GraphBuilder::new(quantization);

    // Shared constants.
    let one = g.f32_scalar("const_one", 1.0);
    let half = g.f32_scalar("const_half", 0.5);
    let sqrt2 = g.f32_scalar("const_sqrt2", std::f32::consts::SQRT_2);
    let mask_fill = g.f32_scalar("const_mask_fill", MASK_FILL);
    let scale = g.f32_scalar("const_sqrt_head_size", (hs as f32).sqrt());
    let axes_1 = g.i64_tensor("const_axes_1", &[1]);
    let axes_2 = g.i64_tensor("const_axes_2", &[2]);
    let axes_0 = g.i64_tensor("const_axes_0", &[0]);
    let slice_starts = g.i64_tensor("const_zero_1d", &[0]);
    let heads_shape = g.i64_tensor("const_heads_shape", &[0, 0, nh as i64, hs as i64]);
    let merged_shape = g.i64_tensor("const_merged_shape", &[0, 0, h as i64]);

    // Embeddings: word + position + token type, then LayerNorm.
    let word = g.weight("embeddings.word_embeddings.weight", w.get("embeddings.word_embeddings.weight", &[cfg.vocab_size, h])?);
    let pos = g.weight(
        "embeddings.position_embeddings.weight",
        w.get("embeddings.position_embeddings.weight", &[cfg.max_position_embeddings, h])?,
    );
    let tt = g.weight(
        "embeddings.token_type_embeddings.weight",
        w.get("embeddings.token_type_embeddings.weight", &[cfg.type_vocab_size, h])?,
    );
    let word_emb = g.op("Gather", "/embeddings/word_embeddings/Gather", &[&word, onnx_io::INPUT_IDS], vec![]);
    // positions = position_ids[:, :sequence] (a constant [1, max_positions] row sliced to the input's
    // length), as Hugging Face's exporter writes it: dynamic in the sequence axis, and the pattern the
    // ONNX Runtime transformers optimiser fuses into EmbedLayerNormalization.
    let position_ids: Vec<i64> = (0..cfg.max_position_embeddings as i64).collect();
    let position_ids = g.i64_tensor_2d("embeddings.position_ids", &[1, cfg.max_position_embeddings], &position_ids);
    let ids_shape = g.op("Shape", "/embeddings/Shape", &[onnx_io::INPUT_IDS], vec![]);
    let seq_index = g.i64_scalar("const_index_1", 1);
    let seq_len = g.op("Gather", "/embeddings/Gather_seq_len", &[&ids_shape, &seq_index], vec![AttributeProto::int("axis", 0)]);
    let seq_end = g.op("Unsqueeze", "/embeddings/Unsqueeze_seq_len", &[&seq_len, &axes_0], vec![]);
    let positions = g.op("Slice", "/embeddings/Slice_position_ids", &[&position_ids, &slice_starts, &seq_end, &axes_1, &axes_1], vec![]);
    let pos_emb = g.op("Gather", "/embeddings/position_embeddings/Gather", &[&pos, &positions], vec![]);
    let tt_emb = g.op("Gather", "/embeddings/token_type_embeddings/Gather", &[&tt, onnx_io::TOKEN_TYPE_IDS], vec![]);
    let sum = g.op("Add", "/embeddings/Add", &[&word_emb, &tt_emb], vec![]);
    let sum = g.op("Add", "/embeddings/Add_1", &[&sum, &pos_emb], vec![]);
    let mut hidden = g.layer_norm(w, "embeddings.LayerNorm", "/embeddings/LayerNorm", &sum, h, eps)?;

    // Additive attention mask [batch, 1, 1, sequence]: 0 for real tokens, finfo.min for padding.
    let m = g.op("Unsqueeze", "/mask/Unsqueeze", &[onnx_io::ATTENTION_MASK, &axes_1], vec![]);
    let m = g.op("Unsqueeze", "/mask/Unsqueeze_1", &[&m, &axes_2], vec![]);
    let m = g.op("Cast", "/mask/Cast", &[&m], vec![AttributeProto::int("to", data_type::FLOAT as i64)]);
    let m = g.op("Sub", "/mask/Sub", &[&one, &m], vec![]);
    let mask = g.op("Mul", "/mask/Mul", &[&m, &mask_fill], vec![]);

    for l in 0..cfg.num_hidden_layers {
        let p = format!("encoder.layer.{l}");
        let n = format!("/encoder/layer.{l}");
        let x = hidden.clone();
        // Self-attention.
        let q = g.linear(w, &format!("{p}.attention.self.query"), &format!("{n}/attention/self/query"), &x, h, h)?;
        let k = g.linear(w, &format!("{p}.attention.self.key"), &format!("{n}/attention/self/key"), &x, h, h)?;
        let v = g.linear(w, &format!("{p}.attention.self.value"), &format!("{n}/attention/self/value"), &x, h, h)?;
        let q = g.op("Reshape", &format!("{n}/attention/self/Reshape_q"), &[&q, &heads_shape], vec![]);
        let q = g.op("Transpose", &format!("{n}/attention/self/Transpose_q"), &[&q], vec![AttributeProto::ints("perm", &[0, 2, 1, 3])]);
        let k = g.op("Reshape", &format!("{n}/attention/self/Reshape_k"), &[&k, &heads_shape], vec![]);
        let k = g.op("Transpose", &format!("{n}/attention/self/Transpose_k"), &[&k], vec![AttributeProto::ints("perm", &[0, 2, 3, 1])]);
        let v = g.op("Reshape", &format!("{n}/attention/self/Reshape_v"), &[&v, &heads_shape], vec![]);
        let v = g.op("Transpose", &format!("{n}/attention/self/Transpose_v"), &[&v], vec![AttributeProto::ints("perm", &[0, 2, 1, 3])]);
        let scores = g.op("MatMul", &format!("{n}/attention/self/MatMul_qk"), &[&q, &k], vec![]);
        let scores = g.op("Div", &format!("{n}/attention/self/Div"), &[&scores, &scale], vec![]);
        let scores = g.op("Add", &format!("{n}/attention/self/Add_mask"), &[&scores, &mask], vec![]);
        let probs = g.op("Softmax", &format!("{n}/attention/self/Softmax"), &[&scores], vec![AttributeProto::int("axis", -1)]);
        let ctx = g.op("MatMul", &format!("{n}/attention/self/MatMul_v"), &[&probs, &v], vec![]);
        let ctx = g.op("Transpose", &format!("{n}/attention/self/Transpose_ctx"), &[&ctx], vec![AttributeProto::ints("perm", &[0, 2, 1, 3])]);
        let ctx = g.op("Reshape", &format!("{n}/attention/self/Reshape_ctx"), &[&ctx, &merged_shape], vec![]);
        let attn = g.linear(w, &format!("{p}.attention.output.dense"), &format!("{n}/attention/output/dense"), &ctx, h, h)?;
        let res = g.op("Add", &format!("{n}/attention/output/Add_residual"), &[&attn, &x], vec![]);
        let x = g.layer_norm(w, &format!("{p}.attention.output.LayerNorm"), &format!("{n}/attention/output/LayerNorm"), &res, h, eps)?;
        // Feed-forward with the exact (erf) GELU: x * 0.5 * (1 + erf(x / sqrt 2)).
        let i = g.linear(w, &format!("{p}.intermediate.dense"), &format!("{n}/intermediate/dense"), &x, h, inter)?;
        let t = g.op("Div", &format!("{n}/intermediate/gelu/Div"), &[&i, &sqrt2], vec![]);
        let t = g.op("Erf", &format!("{n}/intermediate/gelu/Erf"), &[&t], vec![]);
        let t = g.op("Add", &format!("{n}/intermediate/gelu/Add"), &[&t, &one], vec![]);
        let t = g.op("Mul", &format!("{n}/intermediate/gelu/Mul"), &[&i, &t], vec![]);
        let act = g.op("Mul", &format!("{n}/intermediate/gelu/Mul_1"), &[&t, &half], vec![]);
        let o = g.linear(w, &format!("{p}.output.dense"), &format!("{n}/output/dense"), &act, inter, h)?;
        let res = g.op("Add", &format!("{n}/output/Add_residual"), &[&o, &x], vec![]);
        hidden = g.layer_norm(w, &format!("{p}.output.LayerNorm"), &format!("{n}/output/LayerNorm"), &res, h, eps)?;
    }

    let (output_name, output_dim) = match head {
        GraphHead::HiddenState => {
            g.op_named_output("Identity", "/output/Identity", &[&hidden], onnx_io::LAST_HIDDEN_STATE, vec![]);
            (onnx_io::LAST_HIDDEN_STATE, h)
        }
        GraphHead::ColbertProjection { dim } => {
            let proj = w.get(zsc_core::manifest::tensor_names::COLBERT_PROJ, &[*dim, h])?.transposed_2d();
            // Kept f32 whatever the quantization: one small matmul, right before the L2 norm.
            let proj = g.weight("colbert.proj.weight_t", &proj);
            let e = g.op("MatMul", "/colbert/proj/MatMul", &[&hidden, &proj], vec![]);
            // F.normalize(e, dim=-1, eps=1e-12) = e / max(||e||_2, eps).
            let sq = g.op("Mul", "/colbert/normalize/Mul", &[&e, &e], vec![]);
            let axes_last = g.i64_tensor("const_axes_last", &[-1]);
            let ss = g.op("ReduceSum", "/colbert/normalize/ReduceSum", &[&sq, &axes_last], vec![AttributeProto::int("keepdims", 1)]);
            let norm = g.op("Sqrt", "/colbert/normalize/Sqrt", &[&ss], vec![]);
            let eps = g.f32_scalar("const_l2_eps", L2_EPS);
            let norm = g.op("Max", "/colbert/normalize/Max", &[&norm, &eps], vec![]);
            g.op_named_output("Div", "/colbert/normalize/Div", &[&e, &norm], onnx_io::TOKEN_EMBEDDINGS, vec![]);
            (onnx_io::TOKEN_EMBEDDINGS, *dim)
        }
    };

    let dyn_axes = [Dim::Named(onnx_io::BATCH_AXIS.into()), Dim::Named(onnx_io::SEQUENCE_AXIS.into())];
    let inputs = [onnx_io::INPUT_IDS, onnx_io::ATTENTION_MASK, onnx_io::TOKEN_TYPE_IDS]
        .iter()
        .map(|name| tensor_value_info(name, data_type::INT64, &dyn_axes))
        .collect();
    let out_dims = [dyn_axes[0].clone(), dyn_axes[1].clone(), Dim::Fixed(output_dim as i64)];
    let graph = GraphProto {
        node: g.nodes,
        name: "zsc_bert_encoder".into(),
        initializer: g.initializers,
        input: inputs,
        output: vec![tensor_value_info(output_name, data_type::FLOAT, &out_dims)],
        ..Default::default()
    };
    Ok(ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: opset }],
        producer_name: "zsc-export".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        metadata_props: metadata.into_iter().map(|(key, value)| StringStringEntryProto { key, value }).collect(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn tiny() -> (BertConfig, Weights) {
        let d = tempfile::tempdir().unwrap();
        zsc_core::fixtures::write_tiny_bert(d.path(), zsc_core::fixtures::TinyBert::default()).unwrap();
        let cfg = crate::weights::load_bert_config(&d.path().join("config.json")).unwrap();
        let w = Weights::load(&d.path().join("model.safetensors")).unwrap();
        (cfg, w)
    }

    /// Every node input is a graph input, an initializer or the output of an earlier node, and
    /// names are unique: the graph is topologically sorted, as ONNX requires.
    fn assert_well_formed(m: &ModelProto) {
        let g = m.graph.as_ref().unwrap();
        let mut known: HashSet<&str> = g.input.iter().map(|v| v.name.as_str()).collect();
        for t in &g.initializer {
            assert!(known.insert(&t.name), "duplicate name {}", t.name);
        }
        let mut node_names = HashSet::new();
        for n in &g.node {
            assert!(node_names.insert(&n.name), "duplicate node {}", n.name);
            for i in &n.input {
                assert!(known.contains(i.as_str()), "{} reads undefined {i}", n.name);
            }
            for o in &n.output {
                assert!(known.insert(o), "{o} defined twice");
            }
        }
        for o in &g.output {
            assert!(known.contains(o.name.as_str()), "output {} never produced", o.name);
        }
    }

    #[test]
    fn hidden_state_graph_is_well_formed() {
        let (cfg, w) = tiny();
        let m = build_bert_model(&cfg, &w, &GraphHead::HiddenState, 17, Quantization::None, vec![]).unwrap();
        assert_well_formed(&m);
        let g = m.graph.as_ref().unwrap();
        assert_eq!(g.output[0].name, onnx_io::LAST_HIDDEN_STATE);
        assert_eq!(m.ir_version, 8);
        assert_eq!(m.opset_import[0].version, 17);
        // Linear weights are stored pre-transposed ([in, out]) for MatMul.
        let t = g.initializer.iter().find(|t| t.name == "encoder.layer.0.intermediate.dense.weight_t").unwrap();
        assert_eq!(t.dims, vec![32, 64]);
        assert_eq!(g.node.iter().filter(|n| n.op_type == "LayerNormalization").count(), 1 + 2 * 2);
        assert_eq!(g.node.iter().filter(|n| n.op_type == "Erf").count(), 2);
    }

    #[test]
    fn colbert_graph_projects_and_normalises() {
        let (cfg, mut w) = tiny();
        let head = GraphHead::ColbertProjection { dim: 8 };
        let err = build_bert_model(&cfg, &w, &head, 17, Quantization::None, vec![]).unwrap_err();
        assert!(matches!(err, ExportError::MissingTensor { ref name, .. } if name == "colbert.proj.weight"), "{err}");
        w.insert("colbert.proj.weight", Tensor { shape: vec![8, 32], data: vec![0.01; 8 * 32] });
        let m = build_bert_model(&cfg, &w, &head, 17, Quantization::None, vec![]).unwrap();
        assert_well_formed(&m);
        let g = m.graph.as_ref().unwrap();
        assert_eq!(g.output[0].name, onnx_io::TOKEN_EMBEDDINGS);
        assert!(g.node.iter().any(|n| n.op_type == "ReduceSum"));
    }
}
