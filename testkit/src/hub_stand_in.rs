//! The Hugging Face Hub stand-in (no network): create repo, preupload, LFS batch + PUT + verify
//! (and multipart), NDJSON commit, revision info, and resolve as `hf-hub` and `huggingface_hub`
//! download it: `Range` requests (206 + `Content-Range`), `ETag` / `X-Repo-Commit` headers, LFS
//! files through a 302 to another origin (`localhost` instead of `127.0.0.1`, as the real Hub
//! sends them to its CDN) with `X-Linked-Etag` / `X-Linked-Size`. Files are kept in memory.
//! Used by datagen's tests and (through `#[path]`) by the runtime's `--model org/name` tests.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::http_stand_in::{percent_decode, ranged, serve, Reply, Request};

pub const TOKEN: &str = "hf_test_token";

/// Every environment variable through which a Hugging Face client picks its Hub, cache, token or
/// offline mode: a test that runs a binary removes them all ([`clean_hf_env`]) and sets its own.
pub const HF_ENV_VARS: [&str; 8] = [
    "HF_ENDPOINT",
    "HF_HOME",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_HUB_OFFLINE",
    "HF_TOKEN_PATH",
];

/// `c` without any of [`HF_ENV_VARS`] from the test's own environment.
pub fn clean_hf_env(c: &mut std::process::Command) -> &mut std::process::Command {
    for v in HF_ENV_VARS {
        c.env_remove(v);
    }
    c
}

/// An endpoint nobody listens on (a port bound, then released): "the Hub is unreachable".
pub fn dead_endpoint() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

#[derive(Default)]
pub struct Repo {
    pub private: bool,
    pub files: BTreeMap<String, Vec<u8>>,
    /// Commit id of the current state (40 hex digits, changes with every commit).
    pub commit: String,
}

#[derive(Default)]
pub struct HubState {
    pub base: String,
    pub repos: HashMap<String, Repo>,
    pub lfs: HashMap<String, Vec<u8>>,
    pub create_bodies: Vec<Value>,
    pub lfs_puts: usize,
    pub verifies: usize,
    /// Ask for multipart uploads (parts of this many bytes) for objects larger than it.
    pub multipart_chunk: Option<usize>,
    pub parts: HashMap<String, BTreeMap<u32, Vec<u8>>>,
    pub commits: Vec<Vec<Value>>,
    /// (method, path, authorization) of every request.
    pub seen: Vec<(String, String, Option<String>)>,
}

pub fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

pub fn err(status: u16, msg: &str) -> Reply {
    Reply::json(status, &json!({"error": msg}))
}

pub fn handle(s: &mut HubState, req: &Request) -> Reply {
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
            Some(b) => ranged(req, b),
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
            let commit = commit_id(&id, 0);
            s.repos.insert(id.clone(), Repo { private: v["private"].as_bool().unwrap_or(false), files: BTreeMap::new(), commit });
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
            let n = s.commits.len() + 1;
            let repo = s.repos.get_mut(&id).unwrap();
            for (p, b) in staged {
                repo.files.insert(p, b);
            }
            repo.commit = commit_id(&id, n);
            let commit = repo.commit.clone();
            s.commits.push(lines);
            let base = s.base.clone();
            Reply::json(200, &json!({"commitUrl": format!("{base}/{id}/commit/{commit}"), "commitOid": commit}))
        }
        ("GET", ["api", "models", o, n, "revision", _rev]) => {
            let Some(repo) = s.repos.get(&format!("{o}/{n}")) else { return err(404, "Repository not found") };
            if repo.private && !authed {
                return err(401, "Repository not found");
            }
            let siblings: Vec<Value> = repo.files.keys().map(|p| json!({"rfilename": p})).collect();
            Reply::json(200, &json!({"id": format!("{o}/{n}"), "sha": repo.commit, "siblings": siblings}))
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
                // LFS content is served from storage through a redirect to another origin, like
                // the real Hub's CDN (hf-hub reads the headers of the 302 itself).
                let cdn = s.base.replace("127.0.0.1", "localhost");
                Reply::bytes(302, vec![])
                    .with_header("Location", &format!("{cdn}/lfs-store/{oid}"))
                    .with_header("X-Linked-Etag", &format!("\"{oid}\""))
                    .with_header("X-Linked-Size", &bytes.len().to_string())
                    .with_header("X-Repo-Commit", &repo.commit)
            } else {
                // git's blob id would do as well; any stable id of the content is an ETag
                ranged(req, bytes).with_header("ETag", &format!("\"{}\"", &oid[..40])).with_header("X-Repo-Commit", &repo.commit)
            }
        }
        _ => err(404, &format!("no route {} {}", req.method, req.path)),
    }
}

pub fn start_hub() -> (String, Arc<Mutex<HubState>>) {
    start_hub_with(None)
}

pub fn start_hub_with(multipart_chunk: Option<usize>) -> (String, Arc<Mutex<HubState>>) {
    let state = Arc::new(Mutex::new(HubState { multipart_chunk, ..Default::default() }));
    let st = state.clone();
    let url = serve(Arc::new(move |req: &Request| handle(&mut st.lock().unwrap(), req)));
    state.lock().unwrap().base = url.clone();
    (url, state)
}

/// A 40-hex commit id, different for every (repo, commit number).
pub fn commit_id(repo: &str, n: usize) -> String {
    sha256_hex(format!("{repo}#{n}").as_bytes())[..40].to_string()
}

/// Put a repo on the Hub directly (no push): every file under `dir`; `.onnx` and `.safetensors`
/// files are stored as LFS objects (served through the redirect). Returns the commit id.
pub fn add_repo(state: &Arc<Mutex<HubState>>, repo_id: &str, private: bool, dir: &Path) -> String {
    let mut s = state.lock().unwrap();
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().replace('\\', "/");
            let bytes = std::fs::read(&p).unwrap();
            if rel.ends_with(".onnx") || rel.ends_with(".safetensors") {
                s.lfs.insert(sha256_hex(&bytes), bytes.clone());
            }
            files.insert(rel, bytes);
        }
    }
    let n = s.commits.len() + s.repos.len() + 1;
    let commit = commit_id(repo_id, n);
    s.repos.insert(repo_id.to_string(), Repo { private, files, commit: commit.clone() });
    commit
}

/// How many requests reached the stand-in (a warm cache makes none for downloads).
pub fn downloads(state: &Arc<Mutex<HubState>>) -> usize {
    state
        .lock()
        .unwrap()
        .seen
        .iter()
        .filter(|(m, p, _)| m == "GET" && (p.contains("/resolve/") || p.starts_with("/lfs-store")))
        .count()
}
