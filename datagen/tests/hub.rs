//! push / pull against a local Hugging Face Hub stand-in (no network) that speaks the Hub's
//! protocol: create repo, preupload, LFS batch + PUT + verify, NDJSON commit, revision info,
//! resolve (LFS files through a redirect). Files are kept in memory.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use common::{percent_decode, serve, Reply, Request};
use datagen::hub::HubClient;
use datagen::secrets::Secret;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const TOKEN: &str = "hf_test_token";

#[derive(Default)]
struct Repo {
    private: bool,
    files: BTreeMap<String, Vec<u8>>,
}

#[derive(Default)]
struct HubState {
    base: String,
    repos: HashMap<String, Repo>,
    lfs: HashMap<String, Vec<u8>>,
    create_bodies: Vec<Value>,
    lfs_puts: usize,
    verifies: usize,
    /// Ask for multipart uploads (parts of this many bytes) for objects larger than it.
    multipart_chunk: Option<usize>,
    parts: HashMap<String, BTreeMap<u32, Vec<u8>>>,
    commits: Vec<Vec<Value>>,
    /// (method, path, authorization) of every request.
    seen: Vec<(String, String, Option<String>)>,
}

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

fn err(status: u16, msg: &str) -> Reply {
    Reply::json(status, &json!({"error": msg}))
}

fn handle(s: &mut HubState, req: &Request) -> Reply {
    let auth = req.header("authorization").map(str::to_string);
    s.seen.push((req.method.clone(), req.path.clone(), auth.clone()));
    let authed = auth.as_deref() == Some(&format!("Bearer {TOKEN}"));
    let path = req.path.clone();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();

    // LFS object storage (pre-signed style URLs: no Hub token needed).
    if req.method == "PUT" && segs.first() == Some(&"lfs-store") {
        let oid = segs[1];
        if sha256_hex(&req.body) != oid {
            return err(400, "content does not match oid");
        }
        s.lfs_puts += 1;
        s.lfs.insert(oid.to_string(), req.body.clone());
        return Reply::bytes(200, vec![]);
    }
    if req.method == "GET" && segs.first() == Some(&"lfs-store") {
        return match s.lfs.get(segs[1]) {
            Some(b) => Reply::bytes(200, b.clone()),
            None => err(404, "no such object"),
        };
    }
    if req.method == "PUT" && segs.first() == Some(&"lfs-part") {
        let n: u32 = segs[2].parse().unwrap();
        s.parts.entry(segs[1].to_string()).or_default().insert(n, req.body.clone());
        return Reply::bytes(200, vec![]).with_header("ETag", &format!("\"etag-{n}\""));
    }
    if req.method == "POST" && segs.first() == Some(&"lfs-complete") {
        let oid = segs[1];
        let v = req.json();
        assert_eq!(v["oid"], oid);
        let parts = s.parts.remove(oid).unwrap_or_default();
        let listed = v["parts"].as_array().unwrap();
        assert_eq!(listed.len(), parts.len());
        for (p, (n, _)) in listed.iter().zip(&parts) {
            assert_eq!(p["partNumber"].as_u64(), Some(*n as u64));
            assert_eq!(p["etag"].as_str(), Some(format!("\"etag-{n}\"").as_str()));
        }
        let whole: Vec<u8> = parts.into_values().flatten().collect();
        if sha256_hex(&whole) != oid {
            return err(400, "assembled parts do not match oid");
        }
        s.lfs_puts += 1;
        s.lfs.insert(oid.to_string(), whole);
        return Reply::json(200, &json!({}));
    }
    if req.method == "POST" && segs.first() == Some(&"lfs-verify") {
        if !authed {
            return err(401, "verify needs the token");
        }
        assert_eq!(req.header("x-verify"), Some("1"), "the verify action's header is sent");
        let v = req.json();
        let ok = s.lfs.get(v["oid"].as_str().unwrap_or("")).is_some_and(|b| Some(b.len() as u64) == v["size"].as_u64());
        s.verifies += 1;
        return if ok { Reply::json(200, &json!({})) } else { err(422, "verify failed") };
    }

    match (req.method.as_str(), segs.as_slice()) {
        ("POST", ["api", "repos", "create"]) => {
            if !authed {
                return err(401, "Invalid username or password.");
            }
            let v = req.json();
            s.create_bodies.push(v.clone());
            let id = format!("{}/{}", v["organization"].as_str().unwrap_or(""), v["name"].as_str().unwrap_or(""));
            if s.repos.contains_key(&id) {
                return err(409, "You already created this model repo");
            }
            s.repos.insert(id.clone(), Repo { private: v["private"].as_bool().unwrap_or(false), files: BTreeMap::new() });
            Reply::json(200, &json!({"url": format!("{}/{id}", s.base)}))
        }
        ("POST", ["api", "models", o, n, "preupload", _rev]) => {
            if !authed || !s.repos.contains_key(&format!("{o}/{n}")) {
                return err(401, "unauthorized");
            }
            let v = req.json();
            let files: Vec<Value> = v["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    let p = f["path"].as_str().unwrap();
                    let size = f["size"].as_u64().unwrap();
                    assert!(f["sample"].as_str().is_some(), "sample sent as base64");
                    let lfs = p.ends_with(".safetensors") || p.ends_with(".onnx") || size > 10_000_000;
                    json!({"path": p, "uploadMode": if lfs {"lfs"} else {"regular"}, "shouldIgnore": false})
                })
                .collect();
            Reply::json(200, &json!({"files": files}))
        }
        ("POST", [o, n_git, "info", "lfs", "objects", "batch"]) => {
            let n = n_git.trim_end_matches(".git");
            if !authed || !s.repos.contains_key(&format!("{o}/{n}")) {
                return err(401, "unauthorized");
            }
            assert_eq!(req.header("accept"), Some("application/vnd.git-lfs+json"));
            assert_eq!(req.header("content-type"), Some("application/vnd.git-lfs+json"));
            let v = req.json();
            assert_eq!(v["operation"], "upload");
            assert_eq!(v["hash_algo"], "sha256");
            let objects: Vec<Value> = v["objects"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| {
                    let oid = o["oid"].as_str().unwrap();
                    let size = o["size"].as_u64().unwrap() as usize;
                    if s.lfs.contains_key(oid) {
                        json!({"oid": oid, "size": o["size"]})
                    } else if let Some(chunk) = s.multipart_chunk.filter(|&c| size > c) {
                        let mut header = serde_json::Map::new();
                        header.insert("chunk_size".into(), json!(chunk.to_string()));
                        for n in 1..=size.div_ceil(chunk) {
                            header.insert(n.to_string(), json!(format!("{}/lfs-part/{oid}/{n}", s.base)));
                        }
                        json!({"oid": oid, "size": o["size"], "actions": {
                            "upload": {"href": format!("{}/lfs-complete/{oid}", s.base), "header": header},
                        }})
                    } else {
                        json!({"oid": oid, "size": o["size"], "actions": {
                            "upload": {"href": format!("{}/lfs-store/{oid}", s.base)},
                            "verify": {"href": format!("{}/lfs-verify/{oid}", s.base), "header": {"X-Verify": "1"}},
                        }})
                    }
                })
                .collect();
            Reply::json(200, &json!({"transfer": "basic", "objects": objects}))
        }
        ("POST", ["api", "models", o, n, "commit", _rev]) => {
            let id = format!("{o}/{n}");
            if !authed || !s.repos.contains_key(&id) {
                return err(401, "unauthorized");
            }
            assert_eq!(req.header("content-type"), Some("application/x-ndjson"));
            let lines: Vec<Value> =
                String::from_utf8_lossy(&req.body).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
            assert_eq!(lines[0]["key"], "header");
            let mut staged = Vec::new();
            for l in &lines[1..] {
                let v = &l["value"];
                let p = v["path"].as_str().unwrap().to_string();
                match l["key"].as_str().unwrap() {
                    "file" => {
                        assert_eq!(v["encoding"], "base64");
                        let b = base64::engine::general_purpose::STANDARD.decode(v["content"].as_str().unwrap()).unwrap();
                        staged.push((p, b));
                    }
                    "lfsFile" => {
                        assert_eq!(v["algo"], "sha256");
                        let Some(b) = s.lfs.get(v["oid"].as_str().unwrap()) else {
                            return err(400, "lfs object not uploaded");
                        };
                        assert_eq!(v["size"].as_u64(), Some(b.len() as u64));
                        staged.push((p, b.clone()));
                    }
                    other => return err(400, &format!("unknown key {other}")),
                }
            }
            let repo = s.repos.get_mut(&id).unwrap();
            for (p, b) in staged {
                repo.files.insert(p, b);
            }
            s.commits.push(lines);
            let base = s.base.clone();
            Reply::json(200, &json!({"commitUrl": format!("{base}/{id}/commit/abc123"), "commitOid": "abc123"}))
        }
        ("GET", ["api", "models", o, n, "revision", _rev]) => {
            let Some(repo) = s.repos.get(&format!("{o}/{n}")) else { return err(404, "Repository not found") };
            if repo.private && !authed {
                return err(401, "Repository not found");
            }
            let siblings: Vec<Value> = repo.files.keys().map(|p| json!({"rfilename": p})).collect();
            Reply::json(200, &json!({"id": format!("{o}/{n}"), "sha": "abc123", "siblings": siblings}))
        }
        ("GET", [o, n, "resolve", _rev, rest @ ..]) => {
            let Some(repo) = s.repos.get(&format!("{o}/{n}")) else { return err(404, "Repository not found") };
            if repo.private && !authed {
                return err(401, "Repository not found");
            }
            let file = percent_decode(&rest.join("/"));
            let Some(bytes) = repo.files.get(&file) else { return err(404, "Entry not found") };
            let oid = sha256_hex(bytes);
            if s.lfs.contains_key(&oid) {
                // LFS content is served from storage through a redirect, like the real Hub.
                Reply::bytes(302, vec![]).with_header("Location", &format!("{}/lfs-store/{oid}", s.base))
            } else {
                Reply::bytes(200, bytes.clone())
            }
        }
        _ => err(404, &format!("no route {} {}", req.method, req.path)),
    }
}

fn start_hub() -> (String, Arc<Mutex<HubState>>) {
    start_hub_with(None)
}

fn start_hub_with(multipart_chunk: Option<usize>) -> (String, Arc<Mutex<HubState>>) {
    let state = Arc::new(Mutex::new(HubState { multipart_chunk, ..Default::default() }));
    let st = state.clone();
    let url = serve(Arc::new(move |req: &Request| handle(&mut st.lock().unwrap(), req)));
    state.lock().unwrap().base = url.clone();
    (url, state)
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
    for f in datagen::hub::scan_folder(dir).unwrap() {
        if f.path_in_repo.starts_with(".zsc_pull_complete") {
            continue;
        }
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
    assert_eq!(commit.commit_oid.as_deref(), Some("abc123"));

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

    // Pull back into another folder and compare bytes.
    let cache = tempfile::tempdir().unwrap();
    let pulled = client.pull_repo("alice/zsc-test", "main", cache.path()).await.expect("pull");
    assert_eq!(pulled, cache.path().join("alice--zsc-test").join("main"));
    assert_eq!(read_tree(&pulled), expected);

    // Private: no token, no files.
    let anonymous = HubClient::new(&url, None).unwrap();
    let other = tempfile::tempdir().unwrap();
    let e = anonymous.pull_repo("alice/zsc-test", "main", other.path()).await.unwrap_err();
    assert!(e.to_string().contains("401"), "{e}");

    // Pushing again: the repo exists (409 is fine) and the LFS object is not uploaded twice.
    client.push_folder(src.path(), "alice/zsc-test", true, "main", Some("again")).await.expect("second push");
    let st = state.lock().unwrap();
    assert_eq!(st.lfs_puts, 1);
    assert_eq!(st.commits.len(), 2);
    assert_eq!(st.commits[1][0]["value"]["summary"], "again");
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

    // The synchronous `pull` (what the trainer calls): a public repo needs no token.
    let cache = tempfile::tempdir().unwrap();
    let dir = datagen::pull("bob/public-model", "main", cache.path(), Some(&url)).expect("pull");
    assert_eq!(read_tree(&dir), expected);
    // Local folders come first and are returned as they are.
    let local = datagen::pull(src.path().to_str().unwrap(), "main", cache.path(), Some(&url)).unwrap();
    assert_eq!(local, src.path());
    // Unknown repo: an error naming the status.
    let e = datagen::pull("bob/missing", "main", cache.path(), Some(&url)).unwrap_err();
    assert!(e.to_string().contains("404"), "{e}");
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
    let pulled = client.pull_repo("carol/big", "main", cache.path()).await.unwrap();
    assert_eq!(read_tree(&pulled), expected);

    // Hub unreachable: the completed earlier pull is used.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let retry = datagen::retry::RetryPolicy {
        max_retries: 1,
        base_delay: std::time::Duration::from_millis(5),
        max_delay: std::time::Duration::from_millis(10),
    };
    let offline = HubClient::new(&dead, Some(Secret::new(TOKEN))).unwrap().with_retry(retry);
    assert_eq!(offline.pull_repo("carol/big", "main", cache.path()).await.unwrap(), pulled);
    let empty = tempfile::tempdir().unwrap();
    assert!(offline.pull_repo("carol/big", "main", empty.path()).await.is_err(), "no earlier copy: an error");
}

/// Issue 6 end to end: an exported bundle pushed to the Hub stand-in, pulled back by the
/// synchronous `pull` the CLIs use, loads in the runtime and classifies.
#[test]
fn pushed_bundle_pulls_back_and_classifies() {
    let (url, _state) = start_hub();
    let work = tempfile::tempdir().unwrap();
    let base = work.path().join("tiny-bert");
    zsc_core::fixtures::write_tiny_bert(&base, zsc_core::fixtures::TinyBert::default()).unwrap();
    let bundle = work.path().join("bundle");
    export::export_bundle(
        &base,
        &bundle,
        &export::ExportOptions { model_type: Some(zsc_core::ModelType::BiEncoder), ..Default::default() },
    )
    .unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = HubClient::new(&url, Some(Secret::new(TOKEN))).unwrap();
    rt.block_on(client.push_folder(&bundle, "dana/zsc-bundle", false, "main", None)).expect("push");
    drop(rt);

    let cache = tempfile::tempdir().unwrap();
    let pulled = datagen::pull("dana/zsc-bundle", "main", cache.path(), Some(&url)).expect("pull");
    assert_eq!(read_tree(&pulled), read_tree(&bundle), "pulled bundle differs from the pushed one");

    let local = runtime::Classifier::from_dir(&bundle, runtime::ClassifierOptions::default()).unwrap();
    let remote = runtime::Classifier::from_dir(&pulled, runtime::ClassifierOptions::default()).unwrap();
    let texts = ["how do i transfer money", "what a lovely sunny day"];
    let labels = ["banking", "weather", "music"];
    let a = local.classify(&texts, &labels).unwrap();
    let b = remote.classify(&texts, &labels).unwrap();
    assert_eq!(a, b);
    assert!(b.iter().flatten().all(|s| s.is_finite()));
}
