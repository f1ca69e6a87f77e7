//! The in-batch training target: item i (text_i, label_i) against item j's label is positive when
//! i == j, or when the two items share their text or their label (so that a text is never pushed
//! away from one of its own labels that happens to sit elsewhere in the batch).

use crate::data::Pair;

/// Row-major B×B matrix of 0.0 / 1.0.
pub fn target_matrix(batch: &[Pair]) -> Vec<f32> {
    let b = batch.len();
    let mut t = vec![0f32; b * b];
    for i in 0..b {
        for j in 0..b {
            if i == j || batch[i].text == batch[j].text || batch[i].label == batch[j].label {
                t[i * b + j] = 1.0;
            }
        }
    }
    t
}

/// `pos_weight` for BCE-with-logits: (negatives / positives) × scale, or None without a scale.
pub fn pos_weight(targets: &[f32], scale: Option<f64>) -> Option<f64> {
    let scale = scale?;
    let pos = targets.iter().filter(|&&t| t > 0.5).count().max(1) as f64;
    let neg = targets.len() as f64 - pos;
    Some((neg / pos).max(1.0) * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(t: &str, l: &str) -> Pair {
        Pair { text: t.into(), label: l.into() }
    }

    #[test]
    fn identity_plus_shared_text_or_label() {
        let batch = [pair("a", "x"), pair("a", "y"), pair("b", "x"), pair("c", "z")];
        #[rustfmt::skip]
        let want = vec![
            1., 1., 1., 0.,
            1., 1., 0., 0.,
            1., 0., 1., 0.,
            0., 0., 0., 1.,
        ];
        assert_eq!(target_matrix(&batch), want);
        // 8 positives, 8 negatives: (8 / 8) × 2
        assert_eq!(pos_weight(&want, Some(2.0)), Some(2.0));
        // 1 positive, 3 negatives
        assert_eq!(pos_weight(&[1., 0., 0., 0.], Some(0.5)), Some(1.5));
        assert_eq!(pos_weight(&want, None), None);
    }
}
