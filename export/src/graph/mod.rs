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
use crate::quantize::{LinearRole, PerColumnInt8};
use crate::weights::{Tensor, Weights};
use crate::ExportError;
use zsc_core::{EncoderConfig, Family};

mod bert;
mod modernbert;

/// The graph's inputs for a family, in order: `token_type_ids` only where the family has a
/// token type embedding.
pub fn graph_inputs(family: Family) -> Vec<&'static str> {
    if family.uses_token_types() {
        vec![onnx_io::INPUT_IDS, onnx_io::ATTENTION_MASK, onnx_io::TOKEN_TYPE_IDS]
    } else {
        vec![onnx_io::INPUT_IDS, onnx_io::ATTENTION_MASK]
    }
}

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
    /// int8: the layers that stay f32 all the same.
    keep_f32: Vec<LinearRole>,
    /// int8: the `DynamicQuantizeLinear` outputs (x_q, x_scale, x_zero) of each value already
    /// quantized, so the query/key/value layers quantize their shared input once.
    quantized_inputs: HashMap<String, [String; 3]>,
}

impl GraphBuilder {
    fn new(quantization: Quantization, keep_f32: &[LinearRole]) -> Self {
        GraphBuilder {
            nodes: Vec::new(),
            initializers: Vec::new(),
            quantization,
            keep_f32: keep_f32.to_vec(),
            quantized_inputs: HashMap::new(),
        }
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

    /// `Split` of `x` along the last axis into parts of `sizes` (given as an input, which every
    /// opset from 13 reads the same way).
    fn split_last<const N: usize>(&mut self, name: &str, x: &str, sizes: [usize; N]) -> [String; N] {
        let sizes: Vec<i64> = sizes.iter().map(|&s| s as i64).collect();
        let sizes = self.i64_tensor(&format!("{name}_sizes"), &sizes);
        let outputs: [String; N] = std::array::from_fn(|k| format!("{name}_output_{k}"));
        self.nodes.push(NodeProto {
            input: vec![x.to_string(), sizes],
            output: outputs.to_vec(),
            name: name.to_string(),
            op_type: "Split".into(),
            attribute: vec![AttributeProto::int("axis", -1)],
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

    /// `x @ W^T + b` for a Hugging Face Linear `prefix.weight` `[out, in]` / `prefix.bias` `[out]`;
    /// `role` says whether an int8 export quantizes it.
    #[allow(clippy::too_many_arguments)]
    fn linear(
        &mut self,
        w: &Weights,
        role: LinearRole,
        prefix: &str,
        node: &str,
        x: &str,
        d_in: usize,
        d_out: usize,
    ) -> Result<String, ExportError> {
        self.linear_with_bias(w, role, prefix, node, x, d_in, d_out, true)
    }

    /// [`Self::linear`], the bias only when `bias` (ModernBERT's layers have none).
    #[allow(clippy::too_many_arguments)]
    fn linear_with_bias(
        &mut self,
        w: &Weights,
        role: LinearRole,
        prefix: &str,
        node: &str,
        x: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
    ) -> Result<String, ExportError> {
        let weight = w.get(&format!("{prefix}.weight"), &[d_out, d_in])?.transposed_2d();
        let mm = if self.quantization == Quantization::Int8 && !self.keep_f32.contains(&role) {
            self.int8_matmul(prefix, node, x, &weight)
        } else {
            let wt = self.weight(&format!("{prefix}.weight_t"), &weight);
            self.op("MatMul", &format!("{node}/MatMul"), &[x, &wt], vec![])
        };
        if !bias {
            return Ok(mm);
        }
        let bias = w.get(&format!("{prefix}.bias"), &[d_out])?;
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
        self.layer_norm_with_bias(w, prefix, node, x, h, eps, true)
    }

    /// [`Self::layer_norm`]; without `bias`, a zero bias (ModernBERT's norms have none).
    #[allow(clippy::too_many_arguments)]
    fn layer_norm_with_bias(
        &mut self,
        w: &Weights,
        prefix: &str,
        node: &str,
        x: &str,
        h: usize,
        eps: f32,
        bias: bool,
    ) -> Result<String, ExportError> {
        let gamma = self.weight(&format!("{prefix}.weight"), w.get(&format!("{prefix}.weight"), &[h])?);
        let beta = if bias {
            self.weight(&format!("{prefix}.bias"), w.get(&format!("{prefix}.bias"), &[h])?)
        } else {
            self.f32_tensor(&format!("{prefix}.bias_zero"), &[h], &vec![0.0; h])
        };
        Ok(self.op(
            "LayerNormalization",
            &format!("{node}/LayerNormalization"),
            &[x, &gamma, &beta],
            vec![AttributeProto::int("axis", -1), AttributeProto::float("epsilon", eps)],
        ))
    }
}

/// Builds the complete model: int64 `[batch, sequence]` inputs (`input_ids`, `attention_mask`, and
/// `token_type_ids` for the families that read them, [`graph_inputs`]), one output per
/// [`GraphHead`]. The encoder is built by its family's module. With [`Quantization::Int8`] the
/// encoder's linear layers get int8 weights ([`crate::quantize`]), except those whose role is in
/// `keep_f32`; embeddings, norms, the attention products and the ColBERT projection stay f32.
pub fn build_encoder_model(
    cfg: &EncoderConfig,
    w: &Weights,
    head: &GraphHead,
    opset: i64,
    quantization: Quantization,
    keep_f32: &[LinearRole],
    metadata: Vec<(String, String)>,
) -> Result<ModelProto, ExportError> {
    let h = cfg.hidden_size;
    let mut g = GraphBuilder::new(quantization, keep_f32);
    let hidden = match cfg.family() {
        Family::Bert | Family::Roberta | Family::Mpnet => bert::encoder(&mut g, cfg, w)?,
        Family::ModernBert => modernbert::encoder(&mut g, cfg, w)?,
    };
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
            let ss =
                g.op("ReduceSum", "/colbert/normalize/ReduceSum", &[&sq, &axes_last], vec![AttributeProto::int("keepdims", 1)]);
            let norm = g.op("Sqrt", "/colbert/normalize/Sqrt", &[&ss], vec![]);
            let eps = g.f32_scalar("const_l2_eps", L2_EPS);
            let norm = g.op("Max", "/colbert/normalize/Max", &[&norm, &eps], vec![]);
            g.op_named_output("Div", "/colbert/normalize/Div", &[&e, &norm], onnx_io::TOKEN_EMBEDDINGS, vec![]);
            (onnx_io::TOKEN_EMBEDDINGS, *dim)
        }
    };

    let dyn_axes = [Dim::Named(onnx_io::BATCH_AXIS.into()), Dim::Named(onnx_io::SEQUENCE_AXIS.into())];
    let inputs = graph_inputs(cfg.family()).iter().map(|name| tensor_value_info(name, data_type::INT64, &dyn_axes)).collect();
    let out_dims = [dyn_axes[0].clone(), dyn_axes[1].clone(), Dim::Fixed(output_dim as i64)];
    let graph = GraphProto {
        node: g.nodes,
        name: "zsc_encoder".into(),
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

    fn tiny() -> (EncoderConfig, Weights) {
        let d = tempfile::tempdir().unwrap();
        zsc_testkit::fixtures::write_tiny_bert(d.path(), zsc_testkit::fixtures::TinyBert::default()).unwrap();
        let cfg = crate::weights::load_encoder_config(&d.path().join("config.json")).unwrap();
        let w = Weights::load(&d.path().join("model.safetensors"), &cfg).unwrap();
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
        let m = build_encoder_model(&cfg, &w, &GraphHead::HiddenState, 17, Quantization::None, &[], vec![]).unwrap();
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
        let err = build_encoder_model(&cfg, &w, &head, 17, Quantization::None, &[], vec![]).unwrap_err();
        assert!(matches!(err, ExportError::MissingTensor { ref name, .. } if name == "colbert.proj.weight"), "{err}");
        w.insert("colbert.proj.weight", Tensor { shape: vec![8, 32], data: vec![0.01; 8 * 32] });
        let m = build_encoder_model(&cfg, &w, &head, 17, Quantization::None, &[], vec![]).unwrap();
        assert_well_formed(&m);
        let g = m.graph.as_ref().unwrap();
        assert_eq!(g.output[0].name, onnx_io::TOKEN_EMBEDDINGS);
        assert!(g.node.iter().any(|n| n.op_type == "ReduceSum"));
    }
}
