//! Bad input gives a typed error naming the file / tensor, never a panic, and writes nothing.

mod common;

use std::path::Path;

use common::*;
use zsc_core::ModelType;
use zsc_export::{export_bundle, ExportError, ExportOptions};

fn export_err(src: &Path, out: &Path, opts: &ExportOptions) -> ExportError {
    let e = export_bundle(src, out, opts).expect_err("export should fail");
    assert!(!out.exists(), "a failed export must not leave {}", out.display());
    e
}

#[test]
fn missing_checkpoint_folder() {
    let d = tempfile::tempdir().unwrap();
    let e = export_err(&d.path().join("nope"), &d.path().join("out"), &ExportOptions::default());
    assert!(matches!(e, ExportError::MissingSource { .. }), "{e:?}");
    assert!(e.to_string().contains("nope"), "{e}");
}

#[test]
fn truncated_safetensors() {
    let d = tempfile::tempdir().unwrap();
    let ckpt = d.path().join("ckpt");
    write_checkpoint(&ckpt, ModelType::BiEncoder, true);
    let w = ckpt.join("model.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    let out = d.path().join("out");
    let e = export_err(&ckpt, &out, &ExportOptions::default());
    assert!(matches!(e, ExportError::Safetensors { .. }), "{e:?}");
    assert!(e.to_string().contains("model.safetensors"), "{e}");
    // No temporary folder left behind either.
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
}

#[test]
fn garbage_safetensors_header() {
    let d = tempfile::tempdir().unwrap();
    let ckpt = d.path().join("ckpt");
    write_checkpoint(&ckpt, ModelType::BiEncoder, true);
    std::fs::write(ckpt.join("model.safetensors"), b"\xff\xff\xff\xff\xff\xff\xff\x7fnot json").unwrap();
    let e = export_err(&ckpt, &d.path().join("out"), &ExportOptions::default());
    assert!(matches!(e, ExportError::Safetensors { .. }), "{e:?}");
}

#[test]
fn poly_checkpoint_without_codes() {
    let d = tempfile::tempdir().unwrap();
    let ckpt = d.path().join("ckpt");
    write_checkpoint(&ckpt, ModelType::PolyEncoder, false);
    let e = export_err(&ckpt, &d.path().join("out"), &ExportOptions::default());
    match &e {
        ExportError::MissingTensor { name, .. } => assert_eq!(name, "poly.codes"),
        other => panic!("expected MissingTensor, got {other:?}"),
    }
}

#[test]
fn colbert_checkpoint_without_scale() {
    let d = tempfile::tempdir().unwrap();
    let ckpt = d.path().join("ckpt");
    write_checkpoint(&ckpt, ModelType::Colbert, true);
    let w = ckpt.join("model.safetensors");
    let mut t = read_tensors(&w);
    t.remove("colbert.score_scale");
    write_tensors(&w, &t);
    let e = export_err(&ckpt, &d.path().join("out"), &ExportOptions::default());
    assert!(matches!(&e, ExportError::MissingTensor { name, .. } if name == "colbert.score_scale"), "{e:?}");
}

#[test]
fn wrong_shapes() {
    let d = tempfile::tempdir().unwrap();
    let ckpt = d.path().join("ckpt");
    write_checkpoint(&ckpt, ModelType::PolyEncoder, true);
    let w = ckpt.join("model.safetensors");
    let mut t = read_tensors(&w);
    t.insert("poly.codes".into(), (vec![N_CODES + 1, 32], values((N_CODES + 1) * 32, 1)));
    write_tensors(&w, &t);
    let e = export_err(&ckpt, &d.path().join("out"), &ExportOptions::default());
    match &e {
        ExportError::ShapeMismatch { name, expected, found, .. } => {
            assert_eq!(name, "poly.codes");
            assert_eq!((expected.clone(), found.clone()), (vec![N_CODES, 32], vec![N_CODES + 1, 32]));
        }
        other => panic!("expected ShapeMismatch, got {other:?}"),
    }
    // An encoder weight of the wrong shape, too.
    let mut t = read_tensors(&w);
    t.insert("poly.codes".into(), (vec![N_CODES, 32], values(N_CODES * 32, 1)));
    t.insert("encoder.layer.1.attention.self.key.weight".into(), (vec![32, 16], values(32 * 16, 1)));
    write_tensors(&w, &t);
    let e = export_err(&ckpt, &d.path().join("out"), &ExportOptions::default());
    assert!(
        matches!(&e, ExportError::ShapeMismatch { name, .. } if name == "encoder.layer.1.attention.self.key.weight"),
        "{e:?}"
    );
}

#[test]
fn missing_encoder_tensor() {
    let d = tempfile::tempdir().unwrap();
    let ckpt = d.path().join("ckpt");
    write_checkpoint(&ckpt, ModelType::BiEncoder, true);
    let w = ckpt.join("model.safetensors");
    let mut t = read_tensors(&w);
    t.remove("encoder.layer.1.output.LayerNorm.bias");
    write_tensors(&w, &t);
    let e = export_err(&ckpt, &d.path().join("out"), &ExportOptions::default());
    assert!(matches!(&e, ExportError::MissingTensor { name, .. } if name == "encoder.layer.1.output.LayerNorm.bias"), "{e:?}");
}

#[test]
fn missing_or_bad_config_and_files() {
    let d = tempfile::tempdir().unwrap();
    let ckpt = d.path().join("ckpt");
    write_checkpoint(&ckpt, ModelType::BiEncoder, true);
    let out = d.path().join("out");

    std::fs::rename(ckpt.join("config.json"), d.path().join("config.json")).unwrap();
    let e = export_err(&ckpt, &out, &ExportOptions::default());
    assert!(matches!(&e, ExportError::MissingFile { path, .. } if path.ends_with("config.json")), "{e:?}");

    std::fs::write(ckpt.join("config.json"), "{\"hidden_size\": 32").unwrap();
    let e = export_err(&ckpt, &out, &ExportOptions::default());
    assert!(matches!(e, ExportError::ConfigJson { .. }), "{e:?}");

    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("config.json")).unwrap()).unwrap();
    cfg["hidden_act"] = "relu".into();
    std::fs::write(ckpt.join("config.json"), cfg.to_string()).unwrap();
    let e = export_err(&ckpt, &out, &ExportOptions::default());
    assert!(matches!(e, ExportError::Config { .. }) && e.to_string().contains("hidden_act"), "{e:?}");
    std::fs::rename(d.path().join("config.json"), ckpt.join("config.json")).unwrap();

    std::fs::remove_file(ckpt.join("model.safetensors")).unwrap();
    let e = export_err(&ckpt, &out, &ExportOptions::default());
    assert!(matches!(&e, ExportError::MissingFile { path, .. } if path.ends_with("model.safetensors")), "{e:?}");

    std::fs::remove_file(ckpt.join("tokenizer.json")).unwrap();
    let e = export_err(&ckpt, &out, &ExportOptions::default());
    assert!(matches!(&e, ExportError::MissingFile { path, .. } if path.ends_with("tokenizer.json")), "{e:?}");

    std::fs::write(ckpt.join("zsc_checkpoint.json"), "{").unwrap();
    let e = export_err(&ckpt, &out, &ExportOptions::default());
    assert!(matches!(e, ExportError::Core(_)) && e.to_string().contains("zsc_checkpoint.json"), "{e:?}");
}

#[test]
fn bad_options() {
    let d = tempfile::tempdir().unwrap();
    let ckpt = d.path().join("ckpt");
    write_checkpoint(&ckpt, ModelType::PolyEncoder, true);
    let out = d.path().join("out");
    let e = export_err(&ckpt, &out, &ExportOptions { opset: 13, ..Default::default() });
    assert!(matches!(e, ExportError::Option { option: "opset", .. }), "{e:?}");
    let e = export_err(&ckpt, &out, &ExportOptions { max_length: Some(129), ..Default::default() });
    assert!(matches!(e, ExportError::Option { option: "max_length", .. }), "{e:?}");
    let e = export_err(&ckpt, &out, &ExportOptions { model_type: Some(ModelType::Colbert), ..Default::default() });
    assert!(matches!(e, ExportError::ModelType(_)), "{e:?}");
    // a checkpoint serves the MaxSim it was trained with
    let symmetric = zsc_core::ColbertScoring { maxsim: zsc_core::MaxSimDirection::Symmetric, ..Default::default() };
    let e = export_err(&ckpt, &out, &ExportOptions::default().with_colbert_scoring(symmetric));
    assert!(matches!(e, ExportError::Option { option: "colbert_scoring", .. }), "{e:?}");
}

#[test]
fn refuses_to_replace_a_non_bundle_folder() {
    let d = tempfile::tempdir().unwrap();
    let ckpt = d.path().join("ckpt");
    write_checkpoint(&ckpt, ModelType::BiEncoder, true);
    let out = d.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("precious.txt"), "keep me").unwrap();
    let e = export_bundle(&ckpt, &out, &ExportOptions::default()).unwrap_err();
    assert!(matches!(e, ExportError::Output { .. }), "{e:?}");
    assert_eq!(std::fs::read_to_string(out.join("precious.txt")).unwrap(), "keep me");
}

#[test]
fn cli_exit_codes() {
    let d = tempfile::tempdir().unwrap();
    let ckpt = d.path().join("ckpt");
    write_checkpoint(&ckpt, ModelType::Colbert, true);
    let out = d.path().join("bundle");
    let bin = env!("CARGO_BIN_EXE_zsc-export");
    let o = std::process::Command::new(bin).arg("--checkpoint").arg(&ckpt).arg("--out").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("colbert"));
    assert!(out.join("encoder.onnx").is_file());
    let o = std::process::Command::new(bin)
        .arg("--checkpoint")
        .arg(d.path().join("missing"))
        .arg("--out")
        .arg(d.path().join("b2"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing"), "{}", String::from_utf8_lossy(&o.stderr));
    let o = std::process::Command::new(bin).args(["--checkpoint", "x", "--out", "y", "--model-type", "bogus"]).output().unwrap();
    assert!(!o.status.success());
}
