//! push (hand-written Hub protocol) and pull (hf-hub, standard Hugging Face cache) against the
//! local Hugging Face Hub stand-in (`zsc_testkit::hub_stand_in`, no network), then the pulled
//! bundle classifies in the runtime.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::json;
use zsc_core::http::secrets::Secret;
use zsc_core::hub::upload::HubClient;
use zsc_core::hub::{HubOptions, Wanted};
use zsc_testkit::hub_stand_in::{clean_hf_env, dead_endpoint, downloads, sha256_hex, start_hub, start_hub_with, TOKEN};

/// hf-hub settings for the stand-in, with a private cache folder (never the user's).
fn hub(url: &str, cache: &Path, token: Option<&str>) -> HubOptions {
    HubOptions {
        endpoint: url.to_string(),
        cache_dir: cache.to_path_buf(),
        token: token.map(String::from),
        offline: false,
        progress: false,
    }
}

fn snapshot(cache: &Path, repo: &str, commit: &str) -> PathBuf {
    cache.join(format!("models--{}", repo.replace('/', "--"))).join("snapshots").join(commit)
}

fn write_checkpoint(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    // > 10 MB of deterministic noise: goes through LFS.
    let mut rng = zsc_core::rng::SplitMix64::new(3);
    let big: Vec<u8> = (0..(10_500_000 / 8)).flat_map(|_| rng.next_u64().to_le_bytes()).collect();
    files.insert("model.safetensors".to_string(), big);
    files.insert("config.json".to_string(), br#"{"hidden_size": 32}"#.to_vec());
    files.insert("tokenizer.json".to_string(), br#"{"model": {"vocab": {}}}"#.to_vec());
    files.insert("zsc_checkpoint.json".to_string(), br#"{"step": 1}"#.to_vec());
    files.insert("sub dir/notes+1.txt".to_string(), b"nested, with a space and a plus".to_vec());
    files.insert("empty.txt".to_string(), Vec::new());
    for (p, b) in &files {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b).unwrap();
    }
    files
}

fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for f in zsc_core::hub::upload::scan_folder(dir).unwrap() {
        out.insert(f.path_in_repo.clone(), std::fs::read(&f.abs).unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_then_pull_round_trips_bytes() {
    let (url, state) = start_hub();
    let src = tempfile::tempdir().unwrap();
    let expected = write_checkpoint(src.path());

    let client = HubClient::new(&url, Some(Secret::new(TOKEN))).unwrap();
    let commit = client.push_folder(src.path(), "alice/zsc-test", true, "main", None).await.expect("push");
    let head = state.lock().unwrap().repos["alice/zsc-test"].commit.clone();
    assert_eq!(commit.commit_oid.as_deref(), Some(head.as_str()));

    {
        let st = state.lock().unwrap();
        assert_eq!(st.create_bodies[0], json!({"name": "zsc-test", "organization": "alice", "private": true}));
        assert!(st.repos["alice/zsc-test"].private);
        assert_eq!(st.lfs_puts, 1, "only the safetensors file goes through LFS");
        assert_eq!(st.verifies, 1);
        assert_eq!(st.repos["alice/zsc-test"].files, expected, "the Hub holds the very bytes");
        let commit = &st.commits[0];
        let kinds: BTreeMap<String, String> = commit[1..]
            .iter()
            .map(|l| (l["value"]["path"].as_str().unwrap().to_string(), l["key"].as_str().unwrap().to_string()))
            .collect();
        assert_eq!(kinds["model.safetensors"], "lfsFile");
        assert_eq!(kinds["config.json"], "file");
        assert_eq!(kinds["empty.txt"], "file");
        let lfs_line = commit.iter().find(|l| l["key"] == "lfsFile").unwrap();
        assert_eq!(lfs_line["value"]["oid"], sha256_hex(&expected["model.safetensors"]));
        // Every Hub API call carried the token; the storage PUT (pre-signed style) did not need it.
        for (method, path, auth) in &st.seen {
            if !path.starts_with("/lfs-store") {
                assert_eq!(auth.as_deref(), Some("Bearer hf_test_token"), "{method} {path}");
            }
        }
    }

    // Pull back through hf-hub into a cold cache (standard layout) and compare bytes.
    let cache = tempfile::tempdir().unwrap();
    let options = hub(&url, cache.path(), Some(TOKEN));
    let pulled = zsc_core::hub::pull("alice/zsc-test", "main", &options).expect("pull");
    assert_eq!(pulled, snapshot(cache.path(), "alice/zsc-test", &head));
    assert_eq!(read_tree(&pulled), expected);
    let refs = cache.path().join("models--alice--zsc-test").join("refs").join("main");
    assert_eq!(std::fs::read_to_string(&refs).unwrap(), head);

    // Private: no token, no files.
    let other = tempfile::tempdir().unwrap();
    let e = zsc_core::hub::pull("alice/zsc-test", "main", &hub(&url, other.path(), None)).unwrap_err();
    assert!(e.to_string().contains("401"), "{e}");

    // Pushing again: the repo exists (409 is fine) and the LFS object is not uploaded twice.
    std::fs::write(src.path().join("config.json"), br#"{"hidden_size": 64}"#).unwrap();
    client.push_folder(src.path(), "alice/zsc-test", true, "main", Some("again")).await.expect("second push");
    let new_head = {
        let st = state.lock().unwrap();
        assert_eq!(st.lfs_puts, 1);
        assert_eq!(st.commits.len(), 2);
        assert_eq!(st.commits[1][0]["value"]["summary"], "again");
        st.repos["alice/zsc-test"].commit.clone()
    };
    assert_ne!(new_head, head);
    // The warm cache follows the new commit: refs/main moves, the new snapshot has the new file.
    let pulled2 = zsc_core::hub::pull("alice/zsc-test", "main", &options).expect("pull again");
    assert_eq!(pulled2, snapshot(cache.path(), "alice/zsc-test", &new_head));
    assert_eq!(std::fs::read(pulled2.join("config.json")).unwrap(), br#"{"hidden_size": 64}"#);
    assert_eq!(std::fs::read_to_string(&refs).unwrap(), new_head);
}

#[test]
fn public_flag_and_blocking_pull_entry_points() {
    let (url, state) = start_hub();
    let src = tempfile::tempdir().unwrap();
    let expected = write_checkpoint(src.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = HubClient::new(&url, Some(Secret::new(TOKEN))).unwrap();
    rt.block_on(client.push_folder(src.path(), "bob/public-model", false, "main", None)).unwrap();
    drop(rt);
    assert_eq!(state.lock().unwrap().create_bodies[0]["private"], false);

    // A public repo needs no token; cold cache, then warm: no download the second time.
    let cache = tempfile::tempdir().unwrap();
    let options = hub(&url, cache.path(), None);
    let dir = zsc_core::hub::pull("bob/public-model", "main", &options).expect("pull");
    assert_eq!(read_tree(&dir), expected);
    let before = downloads(&state);
    assert_eq!(zsc_core::hub::pull("bob/public-model", "main", &options).unwrap(), dir);
    assert_eq!(downloads(&state), before, "a warm cache downloads nothing");
    // Local folders come first and are returned as they are.
    let local = zsc_core::hub::pull(src.path().to_str().unwrap(), "main", &options).unwrap();
    assert_eq!(local, src.path());
    // Unknown repo: an error naming the status.
    let e = zsc_core::hub::pull("bob/missing", "main", &options).unwrap_err();
    assert!(e.to_string().contains("404"), "{e}");

    // The trainer's base_model: only the BERT files are fetched (not every file of the repo).
    let bert_cache = tempfile::tempdir().unwrap();
    let bert = zsc_core::hub::resolve("bob/public-model", Wanted::Bert, &hub(&url, bert_cache.path(), None)).unwrap();
    let got: Vec<String> = read_tree(&bert).into_keys().collect();
    assert_eq!(got, ["config.json", "model.safetensors", "tokenizer.json", "zsc_checkpoint.json"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_lfs_upload_round_trips() {
    // Parts of 4 MB: the 10.5 MB file goes up in 3 parts, then a completion with their ETags.
    let (url, state) = start_hub_with(Some(4_000_000));
    let src = tempfile::tempdir().unwrap();
    let expected = write_checkpoint(src.path());
    let client = HubClient::new(&url, Some(Secret::new(TOKEN))).unwrap();
    client.push_folder(src.path(), "carol/big", true, "main", None).await.expect("push");
    {
        let st = state.lock().unwrap();
        let part_puts = st.seen.iter().filter(|(m, p, _)| m == "PUT" && p.starts_with("/lfs-part/")).count();
        assert_eq!(part_puts, 3);
        assert_eq!(st.lfs_puts, 1);
        assert_eq!(st.repos["carol/big"].files, expected);
    }
    let cache = tempfile::tempdir().unwrap();
    let pulled = zsc_core::hub::pull("carol/big", "main", &hub(&url, cache.path(), Some(TOKEN))).unwrap();
    assert_eq!(read_tree(&pulled), expected);

    // Hub unreachable: the warm cache is used (as Python's huggingface_hub does); a cold one is an error.
    let dead = dead_endpoint();
    assert_eq!(zsc_core::hub::pull("carol/big", "main", &hub(&dead, cache.path(), Some(TOKEN))).unwrap(), pulled);
    let empty = tempfile::tempdir().unwrap();
    let e = zsc_core::hub::pull("carol/big", "main", &hub(&dead, empty.path(), Some(TOKEN))).unwrap_err();
    assert!(e.to_string().contains("not in the local Hugging Face cache"), "{e}");
    // HF_HUB_OFFLINE: not a single request, the cache answers.
    let seen = state.lock().unwrap().seen.len();
    let offline = hub(&url, cache.path(), Some(TOKEN)).with_offline(true);
    assert_eq!(zsc_core::hub::pull("carol/big", "main", &offline).unwrap(), pulled);
    assert_eq!(state.lock().unwrap().seen.len(), seen);
}

/// Issue 6 end to end: an exported bundle pushed to the Hub stand-in, pulled back by the
/// synchronous `pull` the CLIs use (hf-hub), loads in the runtime and classifies.
#[test]
fn pushed_bundle_pulls_back_and_classifies() {
    let (url, _state) = start_hub();
    let work = tempfile::tempdir().unwrap();
    let base = work.path().join("tiny-bert");
    zsc_testkit::fixtures::write_tiny_bert(&base, zsc_testkit::fixtures::TinyBert::default()).unwrap();
    let bundle = work.path().join("bundle");
    zsc_export::export_bundle(
        &base,
        &bundle,
        &zsc_export::ExportOptions { model_type: Some(zsc_core::ModelType::BiEncoder), ..Default::default() },
    )
    .unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = HubClient::new(&url, Some(Secret::new(TOKEN))).unwrap();
    rt.block_on(client.push_folder(&bundle, "dana/zsc-bundle", false, "main", None)).expect("push");
    drop(rt);

    let cache = tempfile::tempdir().unwrap();
    let pulled = zsc_core::hub::pull("dana/zsc-bundle", "main", &hub(&url, cache.path(), None)).expect("pull");
    assert_eq!(read_tree(&pulled), read_tree(&bundle), "pulled bundle differs from the pushed one");

    let local = zsc::Classifier::from_dir(&bundle, zsc::ClassifierOptions::default()).unwrap();
    let remote = zsc::Classifier::from_dir(&pulled, zsc::ClassifierOptions::default()).unwrap();
    let texts = ["how do i transfer money", "what a lovely sunny day"];
    let labels = ["banking", "weather", "music"];
    let a = local.scores(&texts, &labels).unwrap();
    let b = remote.scores(&texts, &labels).unwrap();
    assert_eq!(a, b);
    assert!(b.iter().flatten().all(|s| s.is_finite()));
}

/// `trainer push` and `trainer pull` read one set of settings: the endpoint from `HF_ENDPOINT`, the
/// token from the file `huggingface-cli login` writes under `HF_HOME` (no `HF_TOKEN`), and the
/// cache under `HF_HOME/hub`.
#[test]
fn cli_push_and_pull_use_hf_home_and_its_cached_token() {
    let (url, state) = start_hub();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("config.json"), br#"{"hidden_size": 32}"#).unwrap();
    std::fs::write(src.path().join("notes.txt"), b"pushed by the CLI").unwrap();
    let home = tempfile::tempdir().unwrap();
    let trainer = |args: &[&str], token_file: bool| {
        if token_file {
            std::fs::write(home.path().join("token"), format!("{TOKEN}\n")).unwrap();
        } else {
            let _ = std::fs::remove_file(home.path().join("token"));
        }
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"));
        clean_hf_env(&mut c)
            .env("HF_HOME", home.path())
            .env("HF_ENDPOINT", &url)
            .current_dir(home.path())
            .args(args)
            .output()
            .unwrap()
    };
    let run = src.path().to_str().unwrap();
    let out = trainer(&["push", "--run", run, "--repo-id", "erin/cli"], false);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Hugging Face token"), "{}", String::from_utf8_lossy(&out.stderr));

    let out = trainer(&["push", "--run", run, "--repo-id", "erin/cli"], true);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(state.lock().unwrap().repos["erin/cli"].files["notes.txt"], b"pushed by the CLI");

    let out = trainer(&["pull", "--repo-id", "erin/cli"], true);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(dir.starts_with(home.path().join("hub")), "{}", dir.display());
    assert_eq!(std::fs::read(dir.join("notes.txt")).unwrap(), b"pushed by the CLI");
}
