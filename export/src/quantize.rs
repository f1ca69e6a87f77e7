//! int8 weights for the encoder's linear layers (`zsc-export --quantize int8`), computed here so no
//! Python tool is needed at export time.
//!
//! Weights: symmetric int8, one scale per output channel (column of the `[in, out]` MatMul weight):
//! `scale_j = max_i |W_ij| / 127`, `q_ij = round_half_even(W_ij / scale_j)` in `[-127, 127]`, zero
//! point 0. This is what `onnxruntime.quantization.quantize_dynamic(per_channel=True)` writes for
//! a MatMul weight (`QInt8`, symmetric, `reduce_range=False`).
//!
//! Activations are quantized at run time, per tensor, to uint8 (`DynamicQuantizeLinear`: the
//! tensor's own min/max, asymmetric). The graph pattern, per linear layer
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

/// The largest int8 magnitude used: symmetric, so -128 is never produced.
pub const INT8_MAX: f32 = 127.0;

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
    /// output channel). A column of zeros gets scale 1 (any scale represents it exactly).
    pub fn quantize(t: &Tensor) -> Self {
        assert_eq!(t.shape.len(), 2, "per-column quantization needs a 2-D tensor, got shape {:?}", t.shape);
        let (rows, cols) = (t.shape[0], t.shape[1]);
        let mut absmax = vec![0f32; cols];
        for row in t.data.chunks_exact(cols) {
            for (m, v) in absmax.iter_mut().zip(row) {
                *m = m.max(v.abs());
            }
        }
        let scales: Vec<f32> = absmax.iter().map(|&m| if m > 0.0 { m / INT8_MAX } else { 1.0 }).collect();
        let values = t
            .data
            .chunks_exact(cols)
            .flat_map(|row| row.iter().zip(&scales).map(|(v, s)| (v / s).round_ties_even().clamp(-INT8_MAX, INT8_MAX) as i8))
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
        // Columns: absmax 2.54 (scale 0.02), absmax 1.27 (0.01), all zero (scale 1).
        let t = Tensor { shape: vec![3, 3], data: vec![2.54, -0.005, 0.0, -1.0, 1.27, 0.0, 0.03, -0.015, 0.0] };
        let q = PerColumnInt8::quantize(&t);
        assert_eq!(q.shape, [3, 3]);
        for (s, want) in q.scales.iter().zip([0.02f32, 0.01, 1.0]) {
            assert!((s - want).abs() < 1e-7, "{:?}", q.scales);
        }
        // -0.005 / 0.01 = -0.5 -> -0 (half to even); 0.03 / 0.02 = 1.5 -> 2; -0.015 / 0.01 = -1.5 -> -2.
        assert_eq!(q.values, vec![127, 0, 0, -50, 127, 0, 2, -2, 0]);
    }

    #[test]
    fn error_is_at_most_half_a_step_per_column() {
        let data: Vec<f32> = (0..64 * 24).map(|i| ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * (1 + i % 5) as f32).collect();
        let t = Tensor { shape: vec![64, 24], data };
        let q = PerColumnInt8::quantize(&t);
        assert!(q.values.iter().all(|&v| v != i8::MIN), "symmetric: -128 never used");
        let back = q.dequantize();
        for (k, (a, b)) in t.data.iter().zip(&back.data).enumerate() {
            let step = q.scales[k % 24];
            assert!((a - b).abs() <= 0.5 * step + 1e-6, "element {k}: {a} vs {b}, step {step}");
        }
        // Every column reaches the full range.
        for j in 0..24 {
            assert!((0..64).any(|i| q.values[i * 24 + j].unsigned_abs() == 127), "column {j}");
        }
    }
}
