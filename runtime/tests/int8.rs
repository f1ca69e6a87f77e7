//! `zsc-export --quantize int8` bundles of all three model types load with the default options (no
//! quantization setting anywhere in the runtime) and rank labels like the f32 export of the same
//! tiny checkpoint.

mod common;

use std::path::PathBuf;

use zsc::{Classifier, ClassifierOptions};
use zsc_core::{ModelType, Quantization};

const TEXTS: [&str; 8] = [
    "how do i transfer money to my savings account",
    "what is a good recipe for banana bread with walnuts and a little cinnamon",
    "book a table for two at the italian place tonight",
    "my card was declined at the store yesterday",
    "set an alarm for six thirty tomorrow morning",
    "what will the weather be like in paris this weekend",
    "play some jazz music in the living room",
    "how many calories are in a cup of rice",
];
const LABELS: [&str; 6] = ["banking", "cooking", "restaurant reservation", "alarm clock", "weather forecast", "music"];

/// The same tiny checkpoint exported as f32 and as int8.
fn bundles(name: &str, model_type: ModelType) -> (PathBuf, PathBuf) {
    let root = common::tmp_root().join(format!("int8-{name}"));
    let _ = std::fs::remove_dir_all(&root);
    let ckpt = root.join("checkpoint");
    common::write_checkpoint(&ckpt, model_type, None, None);
    let (fp32, int8) = (root.join("fp32"), root.join("int8"));
    zsc_export::export_bundle(&ckpt, &fp32, &zsc_export::ExportOptions::default()).unwrap();
    zsc_export::export_bundle(&ckpt, &int8, &zsc_export::ExportOptions::default().with_quantization(Quantization::Int8)).unwrap();
    (fp32, int8)
}

/// Pearson correlation of two score matrices, flattened.
fn correlation(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
    let (x, y): (Vec<f64>, Vec<f64>) = a.iter().flatten().zip(b.iter().flatten()).map(|(&u, &v)| (u as f64, v as f64)).unzip();
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let cov: f64 = x.iter().zip(&y).map(|(u, v)| (u - mx) * (v - my)).sum();
    let (vx, vy): (f64, f64) = (x.iter().map(|u| (u - mx).powi(2)).sum(), y.iter().map(|v| (v - my).powi(2)).sum());
    cov / (vx * vy).sqrt()
}

#[test]
fn int8_bundles_load_and_rank_like_fp32() {
    for (name, model_type) in [("bi", ModelType::BiEncoder), ("poly", ModelType::PolyEncoder), ("colbert", ModelType::Colbert)] {
        let (fp32, int8) = bundles(name, model_type);
        let opts = ClassifierOptions::default().with_intra_threads(1);
        let c32 = Classifier::from_dir(&fp32, opts.clone()).unwrap();
        let c8 = Classifier::from_dir(&int8, opts).unwrap();
        assert_eq!(c32.manifest().quantization, Quantization::None);
        assert_eq!(c8.manifest().quantization, Quantization::Int8);
        let (s32, s8) = (c32.scores(&TEXTS, &LABELS).unwrap(), c8.scores(&TEXTS, &LABELS).unwrap());
        let r = correlation(&s32, &s8);
        eprintln!("{model_type}: int8 vs f32 score correlation {r:.5}");
        assert!(r > 0.99, "{model_type}: int8 vs f32 score correlation {r}");
        let top1 = |s: &[Vec<f32>]| -> Vec<usize> { s.iter().map(|row| zsc_core::metrics::top_k_indices(row, 1)[0]).collect() };
        let agree = top1(&s32).iter().zip(top1(&s8)).filter(|(a, b)| *a == b).count();
        assert!(agree >= TEXTS.len() - 1, "{model_type}: top-1 agrees on {agree} of {} texts", TEXTS.len());
    }
}

/// The thread options reach ONNX Runtime and do not change results.
#[test]
fn spinning_and_thread_options_give_the_same_scores() {
    let (_, int8) = bundles("options", ModelType::BiEncoder);
    let base = Classifier::from_dir(&int8, ClassifierOptions::default().with_intra_threads(1)).unwrap();
    let other =
        Classifier::from_dir(&int8, ClassifierOptions::default().with_intra_threads(2).with_intra_op_spinning(false)).unwrap();
    // One text per call: the same activation scales in both (int8 activations are quantized per call).
    for text in TEXTS {
        let (a, b) = (base.scores(&[text], &LABELS).unwrap(), other.scores(&[text], &LABELS).unwrap());
        for (u, v) in a[0].iter().zip(&b[0]) {
            assert!((u - v).abs() <= 1e-4 * (1.0 + u.abs()), "{text}: {u} vs {v}");
        }
    }
}
