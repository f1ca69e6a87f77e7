//! int8 weights for the encoder's linear layers (`zsc-export --quantize int8`), computed here so no
//! Python tool is needed at export time.
//!
//! Weights: symmetric **7-bit** values in int8, one scale per output channel (column of the
//! `[in, out]` MatMul weight): `scale_j = max_i |W_ij| / 63`, `q_ij = round_half_even(W_ij / scale_j)`
//! in `[-63, 63]`, zero point 0. This is `onnxruntime.quantization.quantize_dynamic(per_channel=True,
//! reduce_range=True)`. Why 7 bits: on CPUs without AVX-512 VNNI / AVX-VNNI, ONNX Runtime's u8 x s8
//! kernel adds pairs of products in int16 (`vpmaddubsw`), which saturates at 32767 when a pair of
//! uint8 activations near 255 meets a pair of weights near 127. On an AVX2 EPYC that turned the real
//! all-mpnet-base-v2 into noise (embedding cosine to f32: 0.02; held-out test macro 0.119), while
//! 7-bit weights (`2 * 255 * 63 < 32767`) cannot saturate and cost nothing measurable (MiniLM cosine
//! to f32 0.9920 vs 0.9924; docs/encoders.md).
//!
//! Activations are quantized at run time, per tensor, to uint8 (`DynamicQuantizeLinear`: the
//! tensor's own min/max, asymmetric). Per-tensor scales cannot hold the massive activations some
//! encoders have after the feed-forward GELU (up to 99 on a few channels of the special tokens in
//! MPNet, against a median of 2.4): the feed-forward output projection ([`LinearRole::FfnOut`])
//! therefore stays f32 by default ([`DEFAULT_INT8_KEEP_F32`]); MPNet's cosine to f32 goes from 0.87
//! to 0.986 with it, MiniLM's from 0.992 to 0.995. The graph pattern, per quantized linear layer
//! ([`crate::graph`] writes it):
//!
//! ```text
//! x ─ DynamicQuantizeLinear ─┬ x_q ─────┐
//!                            ├ x_zero ──┤ MatMulInteger(x_q, W_q, x_zero, W_zero) ─ Cast(float) ─┐
//!                            └ x_scale ─ Mul(x_scale, W_scale) ────────────────────────────────── Mul ─ Add(bias)
//! ```
//!
//! is the one ONNX Runtime's CPU optimiser fuses into `MatMulIntegerToFloat` (bias included), and
//! with a `DynamicQuantizeLinear` that feeds only this layer, into `DynamicQuantizeMatMul`
//! (`onnxruntime/core/optimizer/matmul_integer_to_float.cc`, `dynamic_quantize_matmul_fusion.cc`).
//! All standard ONNX operators (opset 11+), so any ONNX runtime can run the bundle.

use crate::weights::Tensor;

/// The largest weight magnitude written: 7 bits, symmetric (the module docs say why not 127).
pub const WEIGHT_QMAX: f32 = 63.0;

/// What a linear layer of the encoder does, the unit `--int8-keep-f32` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinearRole {
    /// Query, key and value projections (ModernBERT: the fused `Wqkv`).
    AttentionIn,
    /// The attention output projection.
    AttentionOut,
    /// The feed-forward input projection (ModernBERT: the gated `Wi`).
    FfnIn,
    /// The feed-forward output projection, whose input carries the massive activations.
    FfnOut,
}

impl LinearRole {
    pub const ALL: [LinearRole; 4] = [LinearRole::AttentionIn, LinearRole::AttentionOut, LinearRole::FfnIn, LinearRole::FfnOut];

    pub fn as_str(self) -> &'static str {
        match self {
            LinearRole::AttentionIn => "attention-in",
            LinearRole::AttentionOut => "attention-out",
            LinearRole::FfnIn => "ffn-in",
            LinearRole::FfnOut => "ffn-out",
        }
    }
}

impl std::fmt::Display for LinearRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The linear layers an int8 export keeps in f32 unless told otherwise.
pub const DEFAULT_INT8_KEEP_F32: &[LinearRole] = &[LinearRole::FfnOut];

/// Parses `--int8-keep-f32`: a comma-separated list of [`LinearRole`] names, or `none`.
pub fn parse_keep_f32(s: &str) -> Result<Vec<LinearRole>, String> {
    if s.trim() == "none" {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|name| {
            let name = name.trim();
            LinearRole::ALL.into_iter().find(|r| r.as_str() == name).ok_or_else(|| {
                let known: Vec<&str> = LinearRole::ALL.iter().map(|r| r.as_str()).collect();
                format!("unknown layer group `{name}`, expected none or a comma-separated list of {}", known.join(", "))
            })
        })
        .collect()
}

/// The `--int8-keep-f32` spelling of a list of roles (`none` when empty).
pub fn keep_f32_to_string(roles: &[LinearRole]) -> String {
    if roles.is_empty() {
        return "none".into();
    }
    roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",")
}

/// A `[rows, cols]` f32 matrix as int8 values with one scale per column.
#[derive(Debug, Clone, PartialEq)]
pub struct PerColumnInt8 {
    pub shape: [usize; 2],
    /// Row-major, like the f32 matrix.
    pub values: Vec<i8>,
    /// `[cols]`: value = `values[i][j] as f32 * scales[j]`.
    pub scales: Vec<f32>,
}

impl PerColumnInt8 {
    /// Symmetric per-column quantization of a 2-D tensor (`[in, out]` MatMul weight: one scale per
    /// output channel) to `[-WEIGHT_QMAX, WEIGHT_QMAX]`. A column of zeros gets scale 1 (any scale
    /// represents it exactly).
    pub fn quantize(t: &Tensor) -> Self {
        assert_eq!(t.shape.len(), 2, "per-column quantization needs a 2-D tensor, got shape {:?}", t.shape);
        let (rows, cols) = (t.shape[0], t.shape[1]);
        let mut absmax = vec![0f32; cols];
        for row in t.data.chunks_exact(cols) {
            for (m, v) in absmax.iter_mut().zip(row) {
                *m = m.max(v.abs());
            }
        }
        let scales: Vec<f32> = absmax.iter().map(|&m| if m > 0.0 { m / WEIGHT_QMAX } else { 1.0 }).collect();
        let values = t
            .data
            .chunks_exact(cols)
            .flat_map(|row| {
                row.iter().zip(&scales).map(|(v, s)| (v / s).round_ties_even().clamp(-WEIGHT_QMAX, WEIGHT_QMAX) as i8)
            })
            .collect();
        PerColumnInt8 { shape: [rows, cols], values, scales }
    }

    /// The f32 matrix these int8 values stand for.
    pub fn dequantize(&self) -> Tensor {
        let cols = self.shape[1];
        let data =
            self.values.chunks_exact(cols).flat_map(|row| row.iter().zip(&self.scales).map(|(&q, s)| q as f32 * s)).collect();
        Tensor { shape: self.shape.to_vec(), data }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_column_scales_and_rounding() {
        // Columns: absmax 1.26 (scale 0.02), absmax 0.63 (0.01), all zero (scale 1).
        let t = Tensor { shape: vec![3, 3], data: vec![1.26, -0.005, 0.0, -1.0, 0.63, 0.0, 0.03, -0.015, 0.0] };
        let q = PerColumnInt8::quantize(&t);
        assert_eq!(q.shape, [3, 3]);
        for (s, want) in q.scales.iter().zip([0.02f32, 0.01, 1.0]) {
            assert!((s - want).abs() < 1e-7, "{:?}", q.scales);
        }
        // -0.005 / 0.01 = -0.5 -> -0 (half to even); 0.03 / 0.02 = 1.5 -> 2; -0.015 / 0.01 = -1.5 -> -2.
        assert_eq!(q.values, vec![63, 0, 0, -50, 63, 0, 2, -2, 0]);
    }

    #[test]
    fn error_is_at_most_half_a_step_per_column() {
        let data: Vec<f32> = (0..64 * 24).map(|i| ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * (1 + i % 5) as f32).collect();
        let t = Tensor { shape: vec![64, 24], data };
        let q = PerColumnInt8::quantize(&t);
        // 7 bits: no pair of products can saturate ONNX Runtime's int16 sums on AVX2 (module docs).
        assert!(q.values.iter().all(|&v| v.unsigned_abs() <= 63), "a weight outside [-63, 63]");
        let back = q.dequantize();
        for (k, (a, b)) in t.data.iter().zip(&back.data).enumerate() {
            let step = q.scales[k % 24];
            assert!((a - b).abs() <= 0.5 * step + 1e-6, "element {k}: {a} vs {b}, step {step}");
        }
        // Every column reaches the full range.
        for j in 0..24 {
            assert!((0..64).any(|i| q.values[i * 24 + j].unsigned_abs() == 63), "column {j}");
        }
    }

    #[test]
    fn keep_f32_lists_parse_and_print() {
        assert_eq!(parse_keep_f32("none").unwrap(), vec![]);
        assert_eq!(parse_keep_f32("ffn-out").unwrap(), DEFAULT_INT8_KEEP_F32);
        assert_eq!(parse_keep_f32("ffn-in, ffn-out").unwrap(), vec![LinearRole::FfnIn, LinearRole::FfnOut]);
        let err = parse_keep_f32("ffn-out,mlp").unwrap_err();
        assert!(err.contains("`mlp`") && err.contains("attention-in"), "{err}");
        assert_eq!(keep_f32_to_string(&[]), "none");
        assert_eq!(keep_f32_to_string(&[LinearRole::AttentionIn, LinearRole::FfnOut]), "attention-in,ffn-out");
    }
}
