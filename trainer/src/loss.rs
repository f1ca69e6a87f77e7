//! The in-batch objective: a batch's B×(B+K) logits (`logits[i][j]` = text i against label j:
//! the B pairs' labels, then K label negatives) against the target matrix (identity + every pair
//! sharing a text or a label, `zsc_core::targets`; a label negative is no text's label).
//! Rows (text → labels) see all B+K labels; columns (label → texts) are the B pairs' labels.

use crate::config::LossKind;
use tch::{Device, Kind, Reduction, Tensor};
use zsc_core::data::Pair;

use crate::error::Result;
use crate::models::{copy_host_to, to_device_async};

/// The targets of one batch on the device: the target matrix `[B,B+K]`, the entries left out of
/// the softmax (true where `target` is 1 off the diagonal, and in filler negative columns) and
/// BCE's positive weight.
pub struct LossTargets {
    pub target: Tensor,
    pub left_out: Tensor,
    /// `[1]`, 1.0 when positives are not weighted.
    pub pos_weight: Tensor,
}

/// Host values of [`LossTargets`]: (target, left-out entries, pos weight). `fillers`: one per
/// label negative, true where it is a filler.
fn host_targets(pairs: &[Pair], fillers: &[bool], pos_weight_scale: Option<f64>) -> (Tensor, Tensor, Tensor) {
    let b = pairs.len();
    let m = b + fillers.len();
    let square = zsc_core::targets::target_matrix(pairs);
    let pw = zsc_core::targets::pos_weight(&square, pos_weight_scale).unwrap_or(1.0) as f32;
    let mut targets = vec![0f32; b * m];
    let mut left_out = vec![0u8; b * m];
    for i in 0..b {
        for j in 0..b {
            targets[i * m + j] = square[i * b + j];
            left_out[i * m + j] = u8::from(square[i * b + j] > 0.5 && i != j);
        }
        for (k, &filler) in fillers.iter().enumerate() {
            left_out[i * m + b + k] = u8::from(filler);
        }
    }
    let (b, m) = (b as i64, m as i64);
    (
        Tensor::from_slice(&targets).view([b, m]),
        Tensor::from_slice(&left_out).view([b, m]).to_kind(Kind::Bool),
        Tensor::from_slice(&[pw]),
    )
}

impl LossTargets {
    pub fn new(pairs: &[Pair], fillers: &[bool], pos_weight_scale: Option<f64>, device: Device) -> Result<Self> {
        let (t, o, w) = host_targets(pairs, fillers, pos_weight_scale);
        Ok(LossTargets {
            target: to_device_async(&t, device)?,
            left_out: to_device_async(&o, device)?,
            pos_weight: to_device_async(&w, device)?,
        })
    }

    /// Refreshes these (static) tensors in place with the targets of `pairs` (same shape).
    pub fn fill_from(&self, pairs: &[Pair], fillers: &[bool], pos_weight_scale: Option<f64>) -> Result<()> {
        let (t, o, w) = host_targets(pairs, fillers, pos_weight_scale);
        copy_host_to(&self.target, &t)?;
        copy_host_to(&self.left_out, &o)?;
        copy_host_to(&self.pos_weight, &w)
    }
}

/// The loss of a batch's logits (scalar tensor; nothing is read back to the host). BCE scores the
/// pairs' own B×B block only (label negatives are a softmax setting).
pub fn batch_loss(logits: &Tensor, targets: &LossTargets, loss: LossKind) -> Tensor {
    let logits = logits.to_kind(Kind::Float);
    let b = logits.size()[0];
    match loss {
        LossKind::Bce => logits.narrow(1, 0, b).binary_cross_entropy_with_logits::<Tensor>(
            &targets.target.narrow(1, 0, b),
            None,
            Some(targets.pos_weight.shallow_clone()),
            Reduction::Mean,
        ),
        LossKind::Softmax => {
            // other positives (same text or same label elsewhere in the batch) are not negatives:
            // drop them from the softmax; the diagonal is each row's and column's class; rows
            // also see the label negatives, columns are the pairs' own labels
            let masked = logits.masked_fill(&targets.left_out, f64::NEG_INFINITY);
            let classes = Tensor::arange(b, (Kind::Int64, logits.device()));
            let rows = masked.cross_entropy_for_logits(&classes);
            let cols = masked.narrow(1, 0, b).transpose(0, 1).cross_entropy_for_logits(&classes);
            (rows + cols) * 0.5
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loss_of(logits: &Tensor, pairs: &[Pair], kind: LossKind, scale: Option<f64>) -> f64 {
        batch_loss(logits, &LossTargets::new(pairs, &[], scale, Device::Cpu).unwrap(), kind).double_value(&[])
    }

    fn pair(t: &str, l: &str) -> Pair {
        Pair { text: t.into(), label: l.into() }
    }

    #[test]
    fn bce_loss_by_hand() {
        // 2 pairs, different texts and labels: identity targets; logits 0 everywhere -> ln 2
        let pairs = vec![pair("a", "x"), pair("b", "y")];
        let logits = Tensor::zeros([2, 2], (Kind::Float, Device::Cpu));
        assert!((loss_of(&logits, &pairs, LossKind::Bce, None) - 2f64.ln()).abs() < 1e-6);
        // pos_weight = negatives/positives = 1 here (scale 3 -> 3): positives weigh 3 -> mean (3+3+1+1)/4 ln 2
        let l = loss_of(&logits, &pairs, LossKind::Bce, Some(3.0));
        assert!((l - 2.0 * 2f64.ln()).abs() < 1e-6, "{l}");
    }

    #[test]
    fn softmax_loss_by_hand() {
        // distinct pairs, logits [[2,0],[0,2]]: each row and column is -ln(e^2/(e^2+1)) = ln(1+e^-2)
        let pairs = vec![pair("a", "x"), pair("b", "y")];
        let logits = Tensor::from_slice(&[2.0f32, 0.0, 0.0, 2.0]).view([2, 2]);
        let l = loss_of(&logits, &pairs, LossKind::Softmax, None);
        assert!((l - (1.0 + (-2f64).exp()).ln()).abs() < 1e-6, "{l}");
        // asymmetric: rows (2,0),(1,3) and columns (2,1),(0,3)
        let logits = Tensor::from_slice(&[2.0f32, 0.0, 1.0, 3.0]).view([2, 2]);
        let ce = |own: f64, other: f64| -(own - (own.exp() + other.exp()).ln());
        let want = 0.5 * ((ce(2.0, 0.0) + ce(3.0, 1.0)) / 2.0 + (ce(2.0, 1.0) + ce(3.0, 0.0)) / 2.0);
        let l = loss_of(&logits, &pairs, LossKind::Softmax, None);
        assert!((l - want).abs() < 1e-6, "{l} vs {want}");
        // the same label twice: the other positive is no negative, whatever its logit -> loss 0
        let pairs = vec![pair("a", "x"), pair("b", "x")];
        let logits = Tensor::from_slice(&[1.0f32, 9.0, 9.0, 1.0]).view([2, 2]);
        let l = loss_of(&logits, &pairs, LossKind::Softmax, None);
        assert!(l.abs() < 1e-6, "{l}");
    }

    #[test]
    fn static_targets_refresh_in_place() {
        let t = LossTargets::new(&[pair("a", "x"), pair("b", "y")], &[], None, Device::Cpu).unwrap();
        t.fill_from(&[pair("a", "x"), pair("b", "x")], &[], None).unwrap();
        assert_eq!(Vec::<f32>::try_from(&t.target.view([-1])).unwrap(), vec![1.0, 1.0, 1.0, 1.0]);
        let other = t.left_out.to_kind(Kind::Int64).view([-1]);
        assert_eq!(Vec::<i64>::try_from(&other).unwrap(), vec![0, 1, 1, 0]);
    }

    #[test]
    fn label_negatives_join_the_rows_only_and_fillers_are_left_out() {
        // 2 pairs + 2 label negatives (the second a filler), logits [B, B+K]
        let pairs = vec![pair("a", "x"), pair("b", "y")];
        let targets = LossTargets::new(&pairs, &[false, true], None, Device::Cpu).unwrap();
        let logits = Tensor::from_slice(&[2.0f32, 0.0, 1.0, 50.0, 1.0, 3.0, -1.0, 50.0]).view([2, 4]);
        let l = batch_loss(&logits, &targets, LossKind::Softmax).double_value(&[]);
        // rows: own vs the other pair's label and the real negative (the filler's 50 is ignored)
        let ce = |own: f64, others: &[f64]| -(own - (own.exp() + others.iter().map(|o| o.exp()).sum::<f64>()).ln());
        let rows = (ce(2.0, &[0.0, 1.0]) + ce(3.0, &[1.0, -1.0])) / 2.0;
        // columns: the pairs' labels against the two texts, negatives not involved
        let cols = (ce(2.0, &[1.0]) + ce(3.0, &[0.0])) / 2.0;
        assert!((l - 0.5 * (rows + cols)).abs() < 1e-5, "{l} vs {}", 0.5 * (rows + cols));
        // no negatives: the same as the square batch alone
        let square = logits.narrow(1, 0, 2);
        let plain = loss_of(&square, &pairs, LossKind::Softmax, None);
        let with_fillers_only =
            batch_loss(&logits, &LossTargets::new(&pairs, &[true, true], None, Device::Cpu).unwrap(), LossKind::Softmax);
        assert!((plain - with_fillers_only.double_value(&[])).abs() < 1e-6);
        // BCE scores the pairs' block only
        let bce = batch_loss(&logits, &targets, LossKind::Bce).double_value(&[]);
        assert!((bce - loss_of(&square, &pairs, LossKind::Bce, None)).abs() < 1e-6);
    }
}
