//! Uploads to the Hugging Face Hub (feature `hub-upload`): push a checkpoint or bundle folder with
//! the Hub's HTTP commit protocol, as in `huggingface_hub`'s `hf_api.py`, `_commit_api.py` and
//! `lfs.py`. `hf-hub` 0.4 has no uploads, so this part is hand-written; downloads are in
//! [`super`]. Both read the same settings ([`HubOptions::from_env`]: `HF_ENDPOINT`, `HF_TOKEN`,
//! `HUGGING_FACE_HUB_TOKEN`, the cached token under `HF_HOME`).
//!
//! Push: `POST /api/repos/create` (409 = exists) → `POST /api/models/{repo}/preupload/{rev}` (which
//! files go through LFS) → `POST /{repo}.git/info/lfs/objects/batch` → `PUT` each object to the
//! returned href (or its parts, multipart) → `POST` verify when asked → `POST
//! /api/models/{repo}/commit/{rev}` with NDJSON (header, `file` base64 entries, `lfsFile` sha256
//! entries).

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::HubOptions;
use crate::http::retry::{server_retry_after, RetryPolicy};
use crate::http::secrets::{secret_from_env, Secret};
use crate::http::truncate_body;

const LFS_CONTENT_TYPE: &str = "application/vnd.git-lfs+json";
/// Files per preupload / LFS batch request (the Hub's own client uses 256).
const CHUNK: usize = 256;
/// The token variables, in the order Python's `huggingface_hub` reads them.
pub const TOKEN_VARS: [&str; 2] = ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"];

/// Everything that can go wrong pushing to the Hub. Messages never contain the token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError {
    /// A local file or folder could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A bad argument (repo id, folder, missing token).
    #[error("{0}")]
    Config(String),
    /// The request could not be sent.
    #[error("request to {url} failed: {source}")]
    Http {
        /// Where it was sent.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The Hub answered with an error status.
    #[error("{what}: HTTP {status} from {url}: {body}")]
    Status {
        /// The step of the push.
        what: String,
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The (shortened) body, with a hint for 401/403/404.
        body: String,
    },
    /// Retries on connection errors, 429 and 5xx ran out.
    #[error("{what}: gave up after {attempts} attempt(s); last error: {last}")]
    RetriesExhausted {
        /// The step of the push.
        what: String,
        /// Requests sent.
        attempts: u32,
        /// The last error.
        last: String,
    },
    /// The Hub answered something this client does not understand.
    #[error("unexpected response: {0}")]
    Protocol(String),
}

impl UploadError {
    fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        UploadError::Io { path: path.into(), source }
    }
}

type Result<T, E = UploadError> = std::result::Result<T, E>;

/// The push token: `options.token` (`HF_TOKEN`, `HUGGING_FACE_HUB_TOKEN`, else the token file that
/// `huggingface-cli login` writes under `HF_HOME`), else those variables in `./.env`.
pub fn push_token(options: &HubOptions) -> Option<Secret> {
    options.token.as_ref().map(Secret::new).or_else(|| secret_from_env(&TOKEN_VARS))
}

/// `USER/NAME` with the Hub's allowed characters.
pub fn validate_repo_id(repo_id: &str) -> Result<(&str, &str)> {
    let bad = || {
        UploadError::Config(format!(
            "repo id `{repo_id}` must be `USER/NAME` (letters, digits, `-`, `_`, `.`; no `..`, at most 96 characters)"
        ))
    };
    match repo_id.split_once('/') {
        Some((owner, name)) if super::is_repo_id(repo_id) => Ok((owner, name)),
        _ => Err(bad()),
    }
}

/// Percent-encode everything outside RFC 3986 unreserved characters and `keep`.
pub fn quote(s: &str, keep: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let c = b as char;
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~') || keep.contains(c) {
            out.push(c);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A local file to upload.
#[derive(Debug, Clone)]
pub struct LocalFile {
    pub abs: PathBuf,
    /// Path in the repo, `/`-separated.
    pub path_in_repo: String,
    pub size: u64,
    pub sha256: String,
    /// First 512 bytes (what preupload inspects).
    pub sample: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadMode {
    Regular,
    Lfs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    pub commit_url: String,
    pub commit_oid: Option<String>,
}

/// Every file under `root` (sorted, `.git/` skipped), hashed.
pub fn scan_folder(root: &Path) -> Result<Vec<LocalFile>> {
    if !root.is_dir() {
        return Err(UploadError::Config(format!("{} is not a folder", root.display())));
    }
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| UploadError::io(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| UploadError::io(&dir, e))?;
            let path = entry.path();
            let meta = std::fs::metadata(&path).map_err(|e| UploadError::io(&path, e))?;
            if meta.is_dir() {
                if entry.file_name() != ".git" {
                    stack.push(path);
                }
                continue;
            }
            let rel = path
                .strip_prefix(root)
                .map_err(|_| UploadError::Config(format!("{} escapes {}", path.display(), root.display())))?;
            let parts: Vec<String> = rel
                .components()
                .map(|c| {
                    c.as_os_str()
                        .to_str()
                        .map(str::to_string)
                        .ok_or_else(|| UploadError::Config(format!("{}: file name is not UTF-8", path.display())))
                })
                .collect::<Result<_>>()?;
            let (sha256, sample) = hash_file(&path)?;
            files.push(LocalFile { abs: path, path_in_repo: parts.join("/"), size: meta.len(), sha256, sample });
        }
    }
    if files.is_empty() {
        return Err(UploadError::Config(format!("{} holds no files", root.display())));
    }
    files.sort_by(|a, b| a.path_in_repo.cmp(&b.path_in_repo));
    Ok(files)
}

fn hash_file(path: &Path) -> Result<(String, Vec<u8>)> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| UploadError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut sample = Vec::new();
    loop {
        let n = f.read(&mut buf).map_err(|e| UploadError::io(path, e))?;
        if n == 0 {
            break;
        }
        if sample.len() < 512 {
            let take = (512 - sample.len()).min(n);
            sample.extend_from_slice(&buf[..take]);
        }
        hasher.update(&buf[..n]);
    }
    Ok((hex(&hasher.finalize()), sample))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Clone)]
pub struct HubClient {
    http: reqwest::Client,
    endpoint: String,
    token: Option<Secret>,
    retry: RetryPolicy,
}

#[derive(Deserialize)]
struct PreuploadFile {
    path: String,
    #[serde(rename = "uploadMode")]
    upload_mode: String,
    #[serde(rename = "shouldIgnore", default)]
    should_ignore: bool,
}

#[derive(Deserialize)]
struct PreuploadResponse {
    files: Vec<PreuploadFile>,
}

#[derive(Deserialize, Debug)]
struct LfsAction {
    href: String,
    #[serde(default)]
    header: Option<serde_json::Map<String, Value>>,
}

#[derive(Deserialize, Debug, Default)]
struct LfsActions {
    upload: Option<LfsAction>,
    verify: Option<LfsAction>,
}

#[derive(Deserialize, Debug)]
struct LfsObject {
    oid: String,
    #[serde(default)]
    actions: Option<LfsActions>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct LfsBatchResponse {
    objects: Vec<LfsObject>,
}

impl HubClient {
    pub fn new(endpoint: &str, token: Option<Secret>) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            // Large LFS uploads may take long; stalled connections still end through the read timeout.
            .read_timeout(Duration::from_secs(300))
            .user_agent(concat!("zsc-datagen/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| UploadError::Http { url: endpoint.to_string(), source })?;
        Ok(HubClient {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token,
            retry: RetryPolicy { max_retries: 4, base_delay: Duration::from_millis(500), max_delay: Duration::from_secs(20) },
        })
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    fn authed(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.header(reqwest::header::AUTHORIZATION, t.bearer()),
            None => req,
        }
    }

    /// Send (rebuilding the request for each attempt), retrying connection errors, 429 and 5xx.
    async fn send(&self, what: &str, build: impl Fn() -> reqwest::RequestBuilder, accept: &[u16]) -> Result<reqwest::Response> {
        let mut last = String::new();
        for attempt in 0..=self.retry.max_retries {
            let req = build();
            match req.send().await {
                Ok(resp) => {
                    let url = resp.url().to_string();
                    let status = resp.status().as_u16();
                    if resp.status().is_success() || accept.contains(&status) {
                        return Ok(resp);
                    }
                    let asked = server_retry_after(resp.headers());
                    let body = resp.text().await.unwrap_or_default();
                    if status == 429 || (500..600).contains(&status) {
                        last = format!("HTTP {status}: {}", truncate_body(&body));
                        if attempt < self.retry.max_retries {
                            tokio::time::sleep(self.retry.delay(attempt, asked)).await;
                        }
                        continue;
                    }
                    return Err(UploadError::Status { what: what.to_string(), url, status, body: hub_hint(status, &body) });
                }
                Err(e) => {
                    last = e.to_string();
                    if attempt < self.retry.max_retries {
                        tokio::time::sleep(self.retry.delay(attempt, None)).await;
                    }
                }
            }
        }
        Err(UploadError::RetriesExhausted { what: what.to_string(), attempts: self.retry.max_retries + 1, last })
    }

    async fn json<T: serde::de::DeserializeOwned>(what: &str, resp: reqwest::Response) -> Result<T> {
        let url = resp.url().to_string();
        let text = resp.text().await.map_err(|source| UploadError::Http { url: url.clone(), source })?;
        serde_json::from_str(&text)
            .map_err(|e| UploadError::Protocol(format!("{what} ({url}): {e}; body: {}", truncate_body(&text))))
    }

    /// `POST /api/repos/create`; an existing repo (409) is fine.
    pub async fn create_repo(&self, repo_id: &str, private: bool) -> Result<()> {
        let (owner, name) = validate_repo_id(repo_id)?;
        let url = format!("{}/api/repos/create", self.endpoint);
        let body = json!({"name": name, "organization": owner, "private": private});
        let resp = self.send("create repo", || self.authed(self.http.post(&url).json(&body)), &[409]).await?;
        if resp.status().as_u16() == 409 {
            tracing::info!("{repo_id} exists already; its visibility is left as it is");
        } else {
            tracing::info!("created {} repo {repo_id}", if private { "private" } else { "public" });
        }
        Ok(())
    }

    /// Upload every file of `folder` in one commit.
    pub async fn push_folder(
        &self,
        folder: &Path,
        repo_id: &str,
        private: bool,
        revision: &str,
        message: Option<&str>,
    ) -> Result<CommitInfo> {
        validate_repo_id(repo_id)?;
        let files = scan_folder(folder)?;
        self.create_repo(repo_id, private).await?;
        let modes = self.preupload(repo_id, revision, &files).await?;
        let lfs: Vec<&LocalFile> =
            files.iter().zip(&modes).filter(|(_, m)| matches!(m, Some(UploadMode::Lfs))).map(|(f, _)| f).collect();
        self.upload_lfs(repo_id, revision, &lfs).await?;
        let folder_name = folder.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "folder".into());
        let summary = message.map(str::to_string).unwrap_or_else(|| format!("Upload {folder_name} with zsc"));
        self.commit(repo_id, revision, &summary, &files, &modes).await
    }

    /// Upload mode per file (`None` = the Hub says to ignore it). Empty files always go regular.
    async fn preupload(&self, repo_id: &str, revision: &str, files: &[LocalFile]) -> Result<Vec<Option<UploadMode>>> {
        let url = format!("{}/api/models/{repo_id}/preupload/{}", self.endpoint, quote(revision, ""));
        let mut modes = std::collections::HashMap::new();
        for chunk in files.chunks(CHUNK) {
            let b64 = base64::engine::general_purpose::STANDARD;
            let body = json!({"files": chunk.iter().map(|f| json!({
                "path": f.path_in_repo,
                "sample": b64.encode(&f.sample),
                "size": f.size,
            })).collect::<Vec<_>>()});
            let resp = self.send("preupload", || self.authed(self.http.post(&url).json(&body)), &[]).await?;
            let info: PreuploadResponse = Self::json("preupload", resp).await?;
            for f in info.files {
                let mode = match (f.should_ignore, f.upload_mode.as_str()) {
                    (true, _) => None,
                    (false, "lfs") => Some(UploadMode::Lfs),
                    (false, "regular") => Some(UploadMode::Regular),
                    (false, other) => {
                        return Err(UploadError::Protocol(format!("preupload: unknown uploadMode `{other}` for {}", f.path)))
                    }
                };
                modes.insert(f.path, mode);
            }
        }
        files
            .iter()
            .map(|f| {
                let mode = modes
                    .get(&f.path_in_repo)
                    .cloned()
                    .ok_or_else(|| UploadError::Protocol(format!("preupload: no answer for {}", f.path_in_repo)))?;
                Ok(if f.size == 0 && mode.is_some() { Some(UploadMode::Regular) } else { mode })
            })
            .collect()
    }

    async fn upload_lfs(&self, repo_id: &str, revision: &str, files: &[&LocalFile]) -> Result<()> {
        if files.is_empty() {
            return Ok(());
        }
        let url = format!("{}/{repo_id}.git/info/lfs/objects/batch", self.endpoint);
        let total: u64 = files.iter().map(|f| f.size).sum();
        let pb = indicatif::ProgressBar::new(total);
        pb.set_style(
            indicatif::ProgressStyle::with_template("{spinner} LFS {bar:40} {bytes}/{total_bytes} [{elapsed_precise}]")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        for chunk in files.chunks(CHUNK) {
            let body = json!({
                "operation": "upload",
                "transfers": ["basic", "multipart"],
                "objects": chunk.iter().map(|f| json!({"oid": f.sha256, "size": f.size})).collect::<Vec<_>>(),
                "hash_algo": "sha256",
                "ref": {"name": revision},
            });
            let resp = self
                .send(
                    "LFS batch",
                    || {
                        self.authed(self.http.post(&url))
                            .header(reqwest::header::ACCEPT, LFS_CONTENT_TYPE)
                            .header(reqwest::header::CONTENT_TYPE, LFS_CONTENT_TYPE)
                            .body(body.to_string())
                    },
                    &[],
                )
                .await?;
            let batch: LfsBatchResponse = Self::json("LFS batch", resp).await?;
            if let Some(err) = batch.objects.iter().find_map(|o| o.error.as_ref().map(|e| (o.oid.clone(), e.clone()))) {
                return Err(UploadError::Protocol(format!("LFS batch refused object {}: {}", err.0, err.1)));
            }
            for obj in batch.objects {
                let file = chunk
                    .iter()
                    .find(|f| f.sha256 == obj.oid)
                    .ok_or_else(|| UploadError::Protocol(format!("LFS batch answered for unknown oid {}", obj.oid)))?;
                let actions = obj.actions.unwrap_or_default();
                match actions.upload {
                    // No upload action: the Hub has this content already.
                    None => tracing::info!("{}: already on the Hub", file.path_in_repo),
                    Some(upload) => {
                        self.upload_object(file, &upload).await?;
                        if let Some(verify) = actions.verify {
                            let body = json!({"oid": file.sha256, "size": file.size});
                            self.send(
                                "LFS verify",
                                || with_action_headers(self.authed(self.http.post(&verify.href)), &verify).json(&body),
                                &[],
                            )
                            .await?;
                        }
                    }
                }
                pb.inc(file.size);
            }
        }
        pb.finish_and_clear();
        Ok(())
    }

    /// Basic transfer: one PUT of the whole object. Multipart (`chunk_size` in the header): PUT
    /// each part to its numbered URL, then POST the parts' ETags to the href.
    async fn upload_object(&self, file: &LocalFile, action: &LfsAction) -> Result<()> {
        let bytes = std::fs::read(&file.abs).map_err(|e| UploadError::io(&file.abs, e))?;
        if bytes.len() as u64 != file.size {
            return Err(UploadError::Config(format!("{} changed while uploading", file.abs.display())));
        }
        let header = action.header.clone().unwrap_or_default();
        let chunk_size = header.get("chunk_size").map(|v| match v {
            Value::String(s) => s.parse::<usize>().ok(),
            Value::Number(n) => n.as_u64().map(|n| n as usize),
            _ => None,
        });
        match chunk_size {
            None => {
                let what = format!("LFS upload of {}", file.path_in_repo);
                self.send(&what, || with_action_headers(self.http.put(&action.href), action).body(bytes.clone()), &[]).await?;
            }
            Some(None) | Some(Some(0)) => {
                return Err(UploadError::Protocol(format!("LFS batch: bad chunk_size {:?}", header.get("chunk_size"))))
            }
            Some(Some(chunk_size)) => {
                let mut parts: Vec<(u32, String)> =
                    header.iter().filter_map(|(k, v)| Some((k.parse::<u32>().ok()?, v.as_str()?.to_string()))).collect();
                parts.sort();
                if parts.len() != bytes.len().div_ceil(chunk_size) {
                    return Err(UploadError::Protocol(format!(
                        "LFS multipart: {} part URLs for {} bytes in chunks of {chunk_size}",
                        parts.len(),
                        bytes.len()
                    )));
                }
                let mut etags = Vec::with_capacity(parts.len());
                for (i, (number, part_url)) in parts.iter().enumerate() {
                    let piece = bytes[i * chunk_size..((i + 1) * chunk_size).min(bytes.len())].to_vec();
                    let what = format!("LFS part {number} of {}", file.path_in_repo);
                    let resp = self.send(&what, || self.http.put(part_url).body(piece.clone()), &[]).await?;
                    let etag = resp
                        .headers()
                        .get(reqwest::header::ETAG)
                        .and_then(|v| v.to_str().ok())
                        .filter(|v| !v.is_empty())
                        .ok_or_else(|| UploadError::Protocol(format!("{what}: no ETag in the answer")))?
                        .to_string();
                    etags.push(json!({"partNumber": number, "etag": etag}));
                }
                let body = json!({"oid": file.sha256, "parts": etags});
                self.send(
                    "LFS multipart completion",
                    || {
                        self.http
                            .post(&action.href)
                            .header(reqwest::header::ACCEPT, LFS_CONTENT_TYPE)
                            .header(reqwest::header::CONTENT_TYPE, LFS_CONTENT_TYPE)
                            .body(body.to_string())
                    },
                    &[],
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn commit(
        &self,
        repo_id: &str,
        revision: &str,
        summary: &str,
        files: &[LocalFile],
        modes: &[Option<UploadMode>],
    ) -> Result<CommitInfo> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut ndjson = String::new();
        let mut push_line = |v: Value| {
            ndjson.push_str(&v.to_string());
            ndjson.push('\n');
        };
        push_line(json!({"key": "header", "value": {"summary": summary, "description": ""}}));
        for (file, mode) in files.iter().zip(modes) {
            match mode {
                None => tracing::info!("{}: ignored by the repo's .gitignore", file.path_in_repo),
                Some(UploadMode::Regular) => {
                    let bytes = std::fs::read(&file.abs).map_err(|e| UploadError::io(&file.abs, e))?;
                    push_line(json!({"key": "file", "value": {
                        "content": b64.encode(&bytes), "path": file.path_in_repo, "encoding": "base64"}}));
                }
                Some(UploadMode::Lfs) => push_line(json!({"key": "lfsFile", "value": {
                    "path": file.path_in_repo, "algo": "sha256", "oid": file.sha256, "size": file.size}})),
            }
        }
        let url = format!("{}/api/models/{repo_id}/commit/{}", self.endpoint, quote(revision, ""));
        let resp = self
            .send(
                "commit",
                || {
                    self.authed(self.http.post(&url))
                        .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
                        .body(ndjson.clone())
                },
                &[],
            )
            .await?;
        let v: Value = Self::json("commit", resp).await?;
        Ok(CommitInfo {
            commit_url: v
                .get("commitUrl")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("{}/{repo_id}/tree/{}", self.endpoint, quote(revision, ""))),
            commit_oid: v.get("commitOid").and_then(Value::as_str).map(str::to_string),
        })
    }
}

fn with_action_headers(mut req: reqwest::RequestBuilder, action: &LfsAction) -> reqwest::RequestBuilder {
    if let Some(h) = &action.header {
        for (k, v) in h {
            if k == "chunk_size" || k.parse::<u32>().is_ok() {
                continue;
            }
            if let Some(v) = v.as_str() {
                req = req.header(k.as_str(), v);
            }
        }
    }
    req
}

/// Extra words for the errors users hit most.
fn hub_hint(status: u16, body: &str) -> String {
    let body = truncate_body(body);
    match status {
        401 => format!("{body} (is HF_TOKEN set and valid?)"),
        403 => format!("{body} (does the token have write access to this namespace?)"),
        404 => format!("{body} (repo or revision not found, or private and no token)"),
        _ => body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids_and_quoting() {
        assert_eq!(validate_repo_id("me/zsc-model_1.0").unwrap(), ("me", "zsc-model_1.0"));
        for bad in ["me", "me/", "/x", "a/b/c", "me/../x", "me/x y", "-me/x"] {
            assert!(validate_repo_id(bad).is_err(), "{bad}");
        }
        assert_eq!(quote("refs/pr/1", ""), "refs%2Fpr%2F1");
        assert_eq!(quote("sub dir/a+b.json", "/"), "sub%20dir/a%2Bb.json");
    }
}
