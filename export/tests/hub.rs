//! `zsc-export --checkpoint org/name`: a sentence-transformers repo fetched through the Hub stand-in
//! (`zsc_testkit::hub_stand_in`, no network) into the standard cache exports exactly as the same
//! folder on disk does: its pooling, normalisation and max_seq_length come along (issue #26), and a
//! warm cache works offline and with the Hub unreachable.

use std::path::Path;
use std::process::{Command, Output};

use zsc_core::{BundleManifest, Pooling};
use zsc_testkit::hub_stand_in::{add_repo, clean_hf_env, dead_endpoint, downloads, start_hub};

/// `zsc-export` with a clean Hugging Face environment: only what the test sets.
fn zsc_export(args: &[&str], env: &[(&str, &str)]) -> Output {
    clean_hf_env(&mut Command::new(env!("CARGO_BIN_EXE_zsc-export"))).args(args).envs(env.iter().copied()).output().unwrap()
}

fn export_ok(checkpoint: &str, out: &Path, env: &[(&str, &str)]) {
    let o = zsc_export(&["--checkpoint", checkpoint, "--out", out.to_str().unwrap()], env);
    assert!(o.status.success(), "zsc-export {checkpoint}: {}", String::from_utf8_lossy(&o.stderr));
}

/// The manifest without `source` (the only field that names where the model came from).
fn manifest_json(bundle: &Path) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(bundle.join("manifest.json")).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("source");
    v
}

#[test]
fn a_sentence_transformers_repo_by_hub_id_exports_like_its_local_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let (families, _) = zsc_testkit::tiny_families(&tmp.path().join("families"));
    // cls pooling, Normalize and max_seq_length 64 live only in the sentence-transformers files
    let folder = families.join("bert_cls");
    assert!(folder.join("1_Pooling/config.json").is_file() && folder.join("modules.json").is_file());
    let (url, state) = start_hub();
    add_repo(&state, "zsc-test/bert-cls", false, &folder);
    let home = tmp.path().join("hf_home");
    let home_s = home.to_str().unwrap();

    let local = tmp.path().join("local");
    export_ok(folder.to_str().unwrap(), &local, &[]);
    let by_id = tmp.path().join("by_id");
    export_ok("zsc-test/bert-cls", &by_id, &[("HF_ENDPOINT", &url), ("HF_HOME", home_s)]);

    let m = BundleManifest::load(&by_id).unwrap();
    assert_eq!((m.spec.embedding.pooling, m.spec.embedding.normalize, m.spec.max_length), (Pooling::Cls, true, 64));
    assert_eq!(manifest_json(&by_id), manifest_json(&local));
    // the weights came through the cache whole (the ONNX files differ only in the source path they record)
    let snapshots = home.join("hub/models--zsc-test--bert-cls/snapshots");
    let snapshot = std::fs::read_dir(&snapshots).unwrap().next().unwrap().unwrap().path();
    let same = |f: &str| std::fs::read(snapshot.join(f)).unwrap() == std::fs::read(folder.join(f)).unwrap();
    assert!(same("model.safetensors") && same("1_Pooling/config.json") && same("tokenizer.json"));

    // warm cache: nothing downloaded, and it works offline and with the Hub unreachable
    let before = downloads(&state);
    let warm = tmp.path().join("warm");
    export_ok("zsc-test/bert-cls", &warm, &[("HF_ENDPOINT", &url), ("HF_HOME", home_s)]);
    assert_eq!(downloads(&state), before, "a warm cache downloads nothing");
    let dead = dead_endpoint();
    let offline = tmp.path().join("offline");
    export_ok("zsc-test/bert-cls", &offline, &[("HF_ENDPOINT", &dead), ("HF_HOME", home_s), ("HF_HUB_OFFLINE", "1")]);
    assert_eq!(manifest_json(&offline), manifest_json(&local));

    // an unknown repo is one clear error, not a panic
    let o = zsc_export(
        &["--checkpoint", "zsc-test/missing", "--out", tmp.path().join("x").to_str().unwrap()],
        &[("HF_ENDPOINT", &url), ("HF_HOME", home_s)],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("zsc-test/missing") && !err.contains("panicked"), "{err}");
}
