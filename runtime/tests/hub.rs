//! `zsc classify --model org/name` and `Classifier::from_pretrained` against the local Hugging Face
//! Hub stand-in that the push/pull tests use (`zsc_testkit::hub_stand_in`, no network): a cold cache
//! downloads through hf-hub into `$HF_HOME/hub` in the standard layout, a warm one downloads
//! nothing, `HF_HUB_OFFLINE=1` and an unreachable Hub use the warm cache, private repos need
//! `HF_TOKEN`.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use zsc::{Classifier, ClassifierOptions};
use zsc_core::hub::HubOptions;
use zsc_core::ModelType;
use zsc_testkit::hub_stand_in::{add_repo, clean_hf_env, dead_endpoint, downloads, start_hub, TOKEN};

/// `zsc` with a clean Hugging Face environment: only what the test sets.
fn zsc(args: &[&str], env: &[(&str, &str)]) -> Output {
    clean_hf_env(&mut Command::new(env!("CARGO_BIN_EXE_zsc"))).args(args).envs(env.iter().copied()).output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const ARGS: [&str; 8] = ["--label", "banking", "--label", "weather", "--json", "--top-k", "0", "how do i move money"];

#[test]
fn classify_by_hub_id_with_a_cold_then_warm_cache() {
    let (url, state) = start_hub();
    let bundle = common::make_bundle("hub-bi", ModelType::BiEncoder, None, None);
    let commit = add_repo(&state, "zsc-test/tiny-bi", false, &bundle);
    let home = tempfile::tempdir().unwrap();
    let home_s = home.path().to_str().unwrap();
    let local = ok(&zsc(&[&["classify", "--model", bundle.to_str().unwrap()][..], &ARGS[..]].concat(), &[]));
    let by_id = [&["classify", "--model", "zsc-test/tiny-bi"][..], &ARGS[..]].concat();

    // cold: downloaded into the standard cache layout, same answer as the local folder
    let out = ok(&zsc(&by_id, &[("HF_ENDPOINT", &url), ("HF_HOME", home_s)]));
    assert_eq!(out, local);
    let snapshot = home.path().join("hub/models--zsc-test--tiny-bi/snapshots").join(&commit);
    for f in ["manifest.json", "encoder.onnx", "head.safetensors", "tokenizer.json"] {
        assert!(snapshot.join(f).is_file(), "{f} missing from {}", snapshot.display());
    }
    assert_eq!(std::fs::read_to_string(home.path().join("hub/models--zsc-test--tiny-bi/refs/main")).unwrap(), commit);
    let cold = downloads(&state);
    assert!(cold >= 4, "{cold} downloads");

    // warm: nothing downloaded again
    assert_eq!(ok(&zsc(&by_id, &[("HF_ENDPOINT", &url), ("HF_HOME", home_s)])), local);
    assert_eq!(downloads(&state), cold, "a warm cache downloads nothing");

    // offline, and with the Hub unreachable: the warm cache answers
    let dead = dead_endpoint();
    let seen = state.lock().unwrap().seen.len();
    assert_eq!(ok(&zsc(&by_id, &[("HF_ENDPOINT", &dead), ("HF_HOME", home_s), ("HF_HUB_OFFLINE", "1")])), local);
    let o = zsc(&by_id, &[("HF_ENDPOINT", &dead), ("HF_HOME", home_s)]);
    assert_eq!(ok(&o), local);
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot reach"), "a warning says why the cache is used");
    assert_eq!(state.lock().unwrap().seen.len(), seen);

    // a cold cache offline: an error naming the cache
    let empty = tempfile::tempdir().unwrap();
    let o = zsc(&by_id, &[("HF_HUB_OFFLINE", "1"), ("HF_HOME", empty.path().to_str().unwrap())]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("zsc-test/tiny-bi@main") && e.contains("not in the local Hugging Face cache"), "{e}");

    // a private repo needs HF_TOKEN
    add_repo(&state, "zsc-test/private-bi", true, &bundle);
    let private = [&["classify", "--model", "zsc-test/private-bi"][..], &ARGS[..]].concat();
    let o = zsc(&private, &[("HF_ENDPOINT", &url), ("HF_HOME", home_s)]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("401"), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(ok(&zsc(&private, &[("HF_ENDPOINT", &url), ("HF_HOME", home_s), ("HF_TOKEN", TOKEN)])), local);

    // a repo that is not a bundle
    let not_bundle = tempfile::tempdir().unwrap();
    std::fs::write(not_bundle.path().join("README.md"), "hello").unwrap();
    add_repo(&state, "zsc-test/readme-only", false, not_bundle.path());
    let o = zsc(
        &[&["classify", "--model", "zsc-test/readme-only"][..], &ARGS[..]].concat(),
        &[("HF_ENDPOINT", &url), ("HF_HOME", home_s)],
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("manifest.json"), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn from_pretrained_fetches_the_bundle() {
    let (url, state) = start_hub();
    let bundle = common::make_bundle("hub-poly", ModelType::PolyEncoder, None, None);
    add_repo(&state, "zsc-test/tiny-poly", false, &bundle);
    let cache = tempfile::tempdir().unwrap();
    let hub = HubOptions { endpoint: url, cache_dir: cache.path().to_path_buf(), token: None, offline: false, progress: false };
    let remote = Classifier::from_pretrained_with("zsc-test/tiny-poly", ClassifierOptions::default(), &hub).unwrap();
    assert!(remote.dir().starts_with(cache.path()));
    let local = Classifier::from_pretrained_with(bundle.to_str().unwrap(), ClassifierOptions::default(), &hub).unwrap();
    assert_eq!(local.dir(), Path::new(&bundle), "local folders are used as they are");
    let (texts, labels) = (["book a table", "rain tomorrow"], ["restaurant", "weather"]);
    assert_eq!(remote.scores(&texts, &labels).unwrap(), local.scores(&texts, &labels).unwrap());
    let e = Classifier::from_pretrained_with("zsc-test/missing", ClassifierOptions::default(), &hub).unwrap_err();
    assert!(e.to_string().contains("404"), "{e}");
}
