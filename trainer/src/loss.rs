//! The in-batch objective: a batch's B×B logits (`logits[i][j]` = text i against label j)
//! against the target matrix (identity + every pair sharing a text or a label,
//! `zsc_core::targets`).

use tch::{Device, Kind, Reduction, Tensor};
use zsc_core::data::Pair;
use zsc_core::LossKind;

use crate::error::Result;
use crate::models::{copy_host_to, to_device_async};

/// The targets of one batch on the device: the target matrix, the other positives (true where
/// `target` is 1 off the diagonal) and BCE's positive weight.
pub struct LossTargets {
    pub target: Tensor,
    pub other_positives: Tensor,
    /// `[1]`, 1.0 when positives are not weighted.
    pub pos_weight: Tensor,
}

/// Host values of [`LossTargets`]: (target, other positives, pos weight).
fn host_targets(pairs: &[Pair], pos_weight_scale: Option<f64>) -> (Tensor, Tensor, Tensor) {
    let b = pairs.len() as i64;
    let targets = zsc_core::targets::target_matrix(pairs);
    let other: Vec<u8> =
        targets.iter().enumerate().map(|(k, &t)| u8::from(t > 0.5 && k as i64 / b != k as i64 % b)).collect();
    let pw = zsc_core::targets::pos_weight(&targets, pos_weight_scale).unwrap_or(1.0) as f32;
    (
        Tensor::from_slice(&targets).view([b, b]),
        Tensor::from_slice(&other).view([b, b]).to_kind(Kind::Bool),
        Tensor::from_slice(&[pw]),
    )
}

impl LossTargets {
    pub fn new(pairs: &[Pair], pos_weight_scale: Option<f64>, device: Device) -> Result<Self> {
        let (t, o, w) = host_targets(pairs, pos_weight_scale);
        Ok(LossTargets { target: to_device_async(&t, device)?, other_positives: to_device_async(&o, device)?, pos_weight: to_device_async(&w, device)? })
    }

    /// Refreshes these (static) tensors in place with the targets of `pairs` (same batch size).
    pub fn fill_from(&self, pairs: &[Pair], pos_weight_scale: Option<f64>) -> Result<()> {
        let (t, o, w) = host_targets(pairs, pos_weight_scale);
        copy_host_to(&self.target, &t)?;
        copy_host_to(&self.other_positives, &o)?;
        copy_host_to(&self.pos_weight, &w)
    }
}

/// The loss of a batch's logits (scalar tensor; nothing is read back to the host).
pub fn batch_loss(logits: &Tensor, targets: &LossTargets, loss: LossKind) -> Tensor {
    let logits = logits.to_kind(Kind::Float);
    match loss {
        LossKind::Bce => logits.binary_cross_entropy_with_logits::<Tensor>(
            &targets.target,
            None,
            Some(targets.pos_weight.shallow_clone()),
            Reduction::Mean,
        ),
        LossKind::Softmax => {
            // other positives (same text or same label elsewhere in the batch) are not negatives:
            // drop them from the softmax; the diagonal is each row's and column's class
            let b = logits.size()[0];
            let masked = logits.masked_fill(&targets.other_positives, f64::NEG_INFINITY);
            let classes = Tensor::arange(b, (Kind::Int64, logits.device()));
            let rows = masked.cross_entropy_for_logits(&classes);
            let cols = masked.transpose(0, 1).cross_entropy_for_logits(&classes);
            (rows + cols) * 0.5
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loss_of(logits: &Tensor, pairs: &[Pair], kind: LossKind, scale: Option<f64>) -> f64 {
        batch_loss(logits, &LossTargets::new(pairs, scale, Device::Cpu).unwrap(), kind).double_value(&[])
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
        let t = LossTargets::new(&[pair("a", "x"), pair("b", "y")], None, Device::Cpu).unwrap();
        t.fill_from(&[pair("a", "x"), pair("b", "x")], None).unwrap();
        assert_eq!(Vec::<f32>::try_from(&t.target.view([-1])).unwrap(), vec![1.0, 1.0, 1.0, 1.0]);
        let other = t.other_positives.to_kind(Kind::Int64).view([-1]);
        assert_eq!(Vec::<i64>::try_from(&other).unwrap(), vec![0, 1, 1, 0]);
    }
}
