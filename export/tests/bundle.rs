//! Bundles from fake tiny-BERT checkpoints: valid ONNX (onnx.checker full_check), runnable in ONNX
//! Runtime at several dynamic shapes, the right manifest and head tensors.

mod common;

use std::path::Path;

use common::*;
use zsc_core::manifest::{bundle_files, onnx_io, tensor_names};
use zsc_core::{BundleManifest, ModelType, Quantization};
use zsc_export::{export_bundle, ExportOptions};

fn export(src: &Path, out: &Path) -> BundleManifest {
    export_bundle(src, out, &ExportOptions::default()).unwrap_or_else(|e| panic!("export failed: {e}"))
}

fn check_with_python(bundle: &Path, extra: &[&Path]) -> serde_json::Value {
    let mut args = vec![bundle];
    args.extend_from_slice(extra);
    let (ok, stdout, stderr) = run_python("check_bundle.py", &args);
    assert!(ok, "check_bundle.py failed:\n{stdout}\n{stderr}");
    last_json(&stdout)
}

#[test]
fn bi_encoder_bundle_is_valid_and_runs() {
    let d = tempfile::tempdir().unwrap();
    let (ckpt, out) = (d.path().join("ckpt"), d.path().join("bundle"));
    write_checkpoint(&ckpt, ModelType::BiEncoder, true);
    let m = export(&ckpt, &out);
    assert_eq!(m, BundleManifest::load(&out).unwrap(), "manifest.json must be what export_bundle returned");
    assert_eq!(m.output, onnx_io::LAST_HIDDEN_STATE);
    assert_eq!(m.output_dim, 32);
    assert_eq!(m.spec.max_length, 32);
    assert_eq!(m.spec.label_template.as_deref(), Some("This text is about {}."));
    assert_eq!(m.inputs, vec!["input_ids", "attention_mask", "token_type_ids"]);
    assert_eq!(m.data.as_deref(), Some(Path::new("data/train.json")));
    assert_eq!(m.seed, Some(7));
    assert_eq!(m.split.map(|s| s.val), Some(0.2));
    assert_eq!(m.opset, 17);
    assert_eq!(m.versions.get("onnx_ir_version").map(String::as_str), Some("8"));
    assert_eq!(m.versions.get("export").map(String::as_str), Some(env!("CARGO_PKG_VERSION")));
    for f in [bundle_files::MANIFEST, bundle_files::ENCODER, bundle_files::HEAD, bundle_files::TOKENIZER] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    assert!(read_tensors(&out.join(bundle_files::HEAD)).is_empty(), "a bi-encoder has no head tensors");
    // Only the bundle itself is left next to it: no temporary folders.
    let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "{names:?}");

    let r = check_with_python(&out, &[]);
    assert_eq!(r["checker"], "ok");
    assert_eq!(r["opset"], 17);
    assert_eq!(r["ir_version"], 8);
}

#[test]
fn poly_encoder_bundle_is_valid_and_carries_the_codes() {
    let d = tempfile::tempdir().unwrap();
    let (ckpt, out) = (d.path().join("ckpt"), d.path().join("bundle"));
    write_checkpoint(&ckpt, ModelType::PolyEncoder, true);
    let m = export(&ckpt, &out);
    assert_eq!(m.spec.model_type, ModelType::PolyEncoder);
    assert_eq!(m.spec.n_code_vectors, Some(N_CODES));
    assert_eq!(m.output, onnx_io::LAST_HIDDEN_STATE);
    let head = read_tensors(&out.join(bundle_files::HEAD));
    assert_eq!(head.len(), 1);
    let (shape, data) = &head[tensor_names::POLY_CODES];
    assert_eq!(shape, &vec![N_CODES, 32]);
    assert_eq!(data, &values(N_CODES * 32, 1), "codes must be copied bit for bit");
    check_with_python(&out, &[]);
}

#[test]
fn colbert_bundle_is_valid_unit_norm_and_matches_projection() {
    let d = tempfile::tempdir().unwrap();
    let (ckpt, out) = (d.path().join("ckpt"), d.path().join("bundle"));
    write_checkpoint(&ckpt, ModelType::Colbert, true);
    let m = export(&ckpt, &out);
    assert_eq!(m.output, onnx_io::TOKEN_EMBEDDINGS);
    assert_eq!(m.output_dim, COLBERT_DIM);
    let head = read_tensors(&out.join(bundle_files::HEAD));
    assert_eq!(head[tensor_names::COLBERT_SCALE], (vec![1], vec![SCORE_SCALE]));

    // The same encoder as a plain bi-encoder (the folder without zsc_checkpoint.json), to check the
    // in-graph projection + L2 normalisation against numpy.
    let plain = d.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    for f in ["model.safetensors", "config.json", "tokenizer.json"] {
        std::fs::copy(ckpt.join(f), plain.join(f)).unwrap();
    }
    let bi = d.path().join("bi");
    export(&plain, &bi);
    let r = check_with_python(&out, &[Path::new("--bi-reference"), &bi, Path::new("--weights"), &ckpt.join("model.safetensors")]);
    assert!(r["max_unit_norm_error"].as_f64().unwrap() < 1e-5, "{r}");
    assert!(r["max_abs_diff_vs_bi_projection"].as_f64().unwrap() < 1e-5, "{r}");
}

#[test]
fn bert_prefix_and_pooler_keys_give_the_same_graph() {
    use prost::Message;
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    write_checkpoint(&a, ModelType::PolyEncoder, true);
    write_checkpoint(&b, ModelType::PolyEncoder, true);
    // b: a BertForMaskedLM-style file, encoder under `bert.`, plus pooler and cls tensors.
    let wpath = b.join("model.safetensors");
    let t = read_tensors(&wpath);
    let mut renamed: std::collections::BTreeMap<_, _> =
        t.into_iter().map(|(k, v)| if k.starts_with("poly.") { (k, v) } else { (format!("bert.{k}"), v) }).collect();
    renamed.insert("bert.pooler.dense.weight".into(), (vec![32, 32], values(32 * 32, 3)));
    renamed.insert("cls.predictions.bias".into(), (vec![4], values(4, 4)));
    write_tensors(&wpath, &renamed);
    export(&a, &d.path().join("out_a"));
    export(&b, &d.path().join("out_b"));
    let load =
        |p: &Path| zsc_export::onnx::ModelProto::decode(std::fs::read(p.join("encoder.onnx")).unwrap().as_slice()).unwrap();
    let (ga, gb) = (load(&d.path().join("out_a")).graph.unwrap(), load(&d.path().join("out_b")).graph.unwrap());
    assert!(!ga.initializer.iter().any(|t| t.name.contains("pooler")));
    assert!(ga == gb, "prefixed weights must give an identical graph");
}

#[test]
fn plain_folder_exports_as_bi_encoder_or_its_own_colbert_floor() {
    let d = tempfile::tempdir().unwrap();
    let plain = d.path().join("plain");
    zsc_testkit::fixtures::write_tiny_bert(&plain, tiny()).unwrap();
    let opts = ExportOptions { model_type: Some(ModelType::BiEncoder), ..Default::default() };
    let m = export_bundle(&plain, &d.path().join("bi"), &opts).unwrap();
    assert_eq!(m.spec.model_type, ModelType::BiEncoder);
    assert_eq!(m.spec.max_length, 128, "plain folders default to max_length 128");
    assert_eq!((m.data, m.split, m.seed), (None, None, None));
    // a poly_encoder needs trained codes
    let opts = ExportOptions { model_type: Some(ModelType::PolyEncoder), ..Default::default() };
    let e = export_bundle(&plain, &d.path().join("poly"), &opts).unwrap_err();
    assert!(matches!(e, zsc_export::ExportError::ModelType(_)), "{e}");
    assert!(e.to_string().contains("bi_encoder"), "{e}");
    assert!(!d.path().join("poly").exists());
    // colbert: the base's own token vectors, identity projection at the hidden size, scale 1,
    // scored as asked
    let scoring = zsc_core::ColbertScoring {
        maxsim: zsc_core::MaxSimDirection::Symmetric,
        special_tokens: zsc_core::SpecialTokenSides::Neither,
    };
    let opts = ExportOptions::default().with_model_type(ModelType::Colbert).with_colbert_scoring(scoring);
    let m = export_bundle(&plain, &d.path().join("colbert"), &opts).unwrap();
    assert_eq!(
        (m.spec.model_type, m.spec.colbert_dim, m.output_dim),
        (ModelType::Colbert, Some(tiny().hidden_size), tiny().hidden_size)
    );
    assert_eq!(m.spec.colbert_scoring, scoring);
    let head = std::fs::read(d.path().join("colbert/head.safetensors")).unwrap();
    let head = safetensors::SafeTensors::deserialize(&head).unwrap();
    assert_eq!(head.tensor(zsc_core::manifest::tensor_names::COLBERT_SCALE).unwrap().data(), 1.0f32.to_le_bytes());
    let opts = ExportOptions { similarity: Some(zsc_core::Similarity::Cosine), ..opts };
    assert!(export_bundle(&plain, &d.path().join("colbert2"), &opts).unwrap_err().to_string().contains("MaxSim"));
}

#[test]
fn options_override_max_length_and_opset() {
    let d = tempfile::tempdir().unwrap();
    let ckpt = d.path().join("ckpt");
    write_checkpoint(&ckpt, ModelType::BiEncoder, true);
    let out = d.path().join("bundle");
    let m = export_bundle(&ckpt, &out, &ExportOptions { opset: 18, max_length: Some(64), ..Default::default() }).unwrap();
    assert_eq!((m.opset, m.spec.max_length), (18, 64));
    let r = check_with_python(&out, &[]);
    assert_eq!(r["opset"], 18);
    // Re-exporting over an existing bundle replaces it.
    let m = export_bundle(&ckpt, &out, &ExportOptions::default()).unwrap();
    assert_eq!(BundleManifest::load(&out).unwrap().opset, 17);
    assert_eq!(m.spec.max_length, 32);
}

/// `--quantize int8` for every architecture: a valid ONNX model (full check) that ONNX Runtime
/// loads, int8 weights in five of the six linear layers of every encoder layer (the feed-forward
/// output stays f32 by default), the pattern ONNX Runtime fuses (no MatMulInteger left after its
/// optimiser), outputs close to the f32 export.
#[test]
fn int8_bundles_are_valid_fused_and_close_to_fp32() {
    let layers = tiny().num_hidden_layers;
    for model_type in [ModelType::BiEncoder, ModelType::PolyEncoder, ModelType::Colbert] {
        let d = tempfile::tempdir().unwrap();
        let (ckpt, fp32, int8) = (d.path().join("ckpt"), d.path().join("fp32"), d.path().join("int8"));
        write_checkpoint(&ckpt, model_type, true);
        let m32 = export(&ckpt, &fp32);
        let opts = ExportOptions::default().with_quantization(Quantization::Int8);
        let m8 = export_bundle(&ckpt, &int8, &opts).unwrap_or_else(|e| panic!("int8 export failed: {e}"));
        assert_eq!(m32.quantization, Quantization::None);
        assert_eq!(m8.quantization, Quantization::Int8);
        assert_eq!(BundleManifest::load(&int8).unwrap(), m8);
        assert_eq!(BundleManifest { quantization: Quantization::None, ..m8.clone() }, m32, "only the quantization differs");
        assert_eq!(read_tensors(&int8.join(bundle_files::HEAD)), read_tensors(&fp32.join(bundle_files::HEAD)));

        let r = check_with_python(&int8, &[Path::new("--fp32-reference"), &fp32]);
        assert_eq!(r["checker"], "ok", "{model_type}: {r}");
        // Per layer: 5 int8 linear layers; query/key/value share one DynamicQuantizeLinear; the two
        // attention products, the feed-forward output (and the ColBERT projection) stay f32 MatMuls.
        let colbert = usize::from(model_type == ModelType::Colbert);
        assert_eq!(r["ops"]["MatMulInteger"], 5 * layers, "{model_type}: {r}");
        assert_eq!(r["ops"]["DynamicQuantizeLinear"], 3 * layers, "{model_type}: {r}");
        assert_eq!(r["ops"]["MatMul"], 3 * layers + colbert, "{model_type}: {r}");
        let fused = r["fused"]["MatMulIntegerToFloat"].as_u64().unwrap() + r["fused"]["DynamicQuantizeMatMul"].as_u64().unwrap();
        assert_eq!(fused, 5 * layers as u64, "{model_type}: every int8 layer fused by ONNX Runtime: {r}");
        assert_eq!(r["fused"]["MatMulInteger"], 0, "{model_type}: {r}");
        let cos = r["min_cosine_vs_fp32"].as_f64().unwrap();
        assert!(cos > 0.99, "{model_type}: int8 output rows vs f32: min cosine {cos}");
        assert_eq!(onnx_metadata(&int8)["zsc.int8_keep_f32"], "ffn-out");
        assert_weights_are_7_bit(&int8);
    }
}

/// `--int8-keep-f32 none` quantizes all six linear layers per encoder layer; `attention-in,ffn-in`
/// keeps exactly those in f32. Every int8 weight lies in [-63, 63] (7 bits: ONNX Runtime's AVX2
/// kernel saturates int16 pair sums with full 8-bit weights; export/src/quantize.rs).
#[test]
fn int8_keep_f32_chooses_the_f32_layers() {
    let layers = tiny().num_hidden_layers;
    let d = tempfile::tempdir().unwrap();
    let ckpt = d.path().join("ckpt");
    write_checkpoint(&ckpt, ModelType::BiEncoder, true);
    let fp32 = d.path().join("fp32");
    export(&ckpt, &fp32);
    use zsc_export::quantize::LinearRole;
    for (keep, int8_layers, dql, f32_matmuls, spelled) in
        [(vec![], 6, 4, 2, "none"), (vec![LinearRole::AttentionIn, LinearRole::FfnIn], 2, 2, 2 + 4, "attention-in,ffn-in")]
    {
        let out = d.path().join(spelled);
        let opts = ExportOptions::default().with_quantization(Quantization::Int8).with_int8_keep_f32(&keep);
        export_bundle(&ckpt, &out, &opts).unwrap();
        let r = check_with_python(&out, &[Path::new("--fp32-reference"), &fp32]);
        assert_eq!(r["ops"]["MatMulInteger"], int8_layers * layers, "{spelled}: {r}");
        assert_eq!(r["ops"]["DynamicQuantizeLinear"], dql * layers, "{spelled}: {r}");
        assert_eq!(r["ops"]["MatMul"], f32_matmuls * layers, "{spelled}: {r}");
        assert!(r["min_cosine_vs_fp32"].as_f64().unwrap() > 0.99, "{spelled}: {r}");
        assert_eq!(onnx_metadata(&out)["zsc.int8_keep_f32"], spelled);
        assert_weights_are_7_bit(&out);
    }
}

fn onnx_model(bundle: &Path) -> zsc_export::onnx::ModelProto {
    use prost::Message;
    zsc_export::onnx::ModelProto::decode(std::fs::read(bundle.join("encoder.onnx")).unwrap().as_slice()).unwrap()
}

fn onnx_metadata(bundle: &Path) -> std::collections::HashMap<String, String> {
    onnx_model(bundle).metadata_props.into_iter().map(|p| (p.key, p.value)).collect()
}

fn assert_weights_are_7_bit(bundle: &Path) {
    let model = onnx_model(bundle);
    let graph = model.graph.unwrap();
    let weights: Vec<_> = graph.initializer.iter().filter(|t| t.name.ends_with(".weight_t_quantized")).collect();
    assert!(!weights.is_empty(), "no int8 weights in {}", bundle.display());
    for t in weights {
        let max = t.raw_data.iter().map(|&b| (b as i8).unsigned_abs()).max().unwrap();
        assert_eq!(max, 63, "{}: largest |weight| {max}, want 63 (7 bits, full range)", t.name);
    }
}
