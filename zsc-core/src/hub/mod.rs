//! Models named by Hugging Face Hub id (`org/name`, optionally `org/name@revision`), fetched with
//! the [`hf_hub`] crate into the standard Hugging Face cache that Python's `huggingface_hub` uses
//! too: `$HF_HUB_CACHE` (default `$HF_HOME/hub`, default `~/.cache/huggingface/hub`), laid out as
//! `models--org--name/{blobs,refs,snapshots/<commit>/}`. A model Python downloaded is found here
//! and the other way round.
//!
//! Settings come from the same environment variables as in Python ([`HubOptions::from_env`]):
//! `HF_ENDPOINT`, `HF_HOME`, `HF_HUB_CACHE`, `HF_TOKEN` (or `HUGGING_FACE_HUB_TOKEN`, else the
//! token file `$HF_HOME/token` that `huggingface-cli login` writes) and `HF_HUB_OFFLINE`.
//!
//! Online, one request (`GET /api/models/{id}/revision/{rev}`) names the current commit; files
//! already in that commit's snapshot are used as they are, missing ones are downloaded. Offline
//! (`HF_HUB_OFFLINE=1`), or when the Hub cannot be reached, the snapshot `refs/{rev}` points to is
//! used if it holds every needed file. Local folders always win over Hub ids.
//!
//! `hf-hub` 0.4 downloads only; uploads (`trainer push`) are in [`upload`] (feature `hub-upload`),
//! with the same settings.

use std::future::Future;
use std::path::{Path, PathBuf};

use hf_hub::api::tokio::{ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};

use crate::manifest::{bundle_files, checkpoint_files, BundleManifest};

#[cfg(feature = "hub-upload")]
pub mod upload;

pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
pub const DEFAULT_REVISION: &str = "main";

/// Everything that can go wrong fetching a model from the Hub.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("`{0}` is neither an existing folder nor a Hub repo id `org/name[@revision]`")]
    NotAModel(String),
    #[error("{repo}@{revision}: not in the local Hugging Face cache {cache} ({why}); connect to the Hub once (unset HF_HUB_OFFLINE) to fetch it")]
    NotCached { repo: String, revision: String, cache: PathBuf, why: String },
    #[error("{repo}@{revision} at {endpoint}: {message}")]
    Remote { repo: String, revision: String, endpoint: String, message: String },
    #[error("{repo}@{revision}: the repo has no file `{file}`{hint}")]
    MissingFile { repo: String, revision: String, file: String, hint: String },
    #[error("downloading {file} of {repo}@{revision}: {source}")]
    Download {
        repo: String,
        revision: String,
        file: String,
        #[source]
        source: ApiError,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{repo}: reading the bundle manifest: {source}")]
    Manifest {
        repo: String,
        #[source]
        source: crate::CoreError,
    },
}

pub type Result<T, E = HubError> = std::result::Result<T, E>;

/// Where and how to reach the Hub. [`HubOptions::from_env`] reads the standard variables.
#[derive(Clone, PartialEq, Eq)]
pub struct HubOptions {
    pub endpoint: String,
    /// The hub cache folder (`.../huggingface/hub`).
    pub cache_dir: PathBuf,
    pub token: Option<String>,
    /// Never touch the network; use the cache only.
    pub offline: bool,
    /// Progress bars on stderr while downloading.
    pub progress: bool,
}

impl std::fmt::Debug for HubOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubOptions")
            .field("endpoint", &self.endpoint)
            .field("cache_dir", &self.cache_dir)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("offline", &self.offline)
            .field("progress", &self.progress)
            .finish()
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface` (as in Python).
pub fn hf_home() -> PathBuf {
    if let Some(h) = env("HF_HOME") {
        return PathBuf::from(h);
    }
    if let Some(x) = env("XDG_CACHE_HOME") {
        return PathBuf::from(x).join("huggingface");
    }
    PathBuf::from(env("HOME").unwrap_or_else(|| ".".into())).join(".cache").join("huggingface")
}

impl HubOptions {
    /// `HF_ENDPOINT`, `HF_HUB_CACHE` / `HF_HOME`, `HF_TOKEN` / `HUGGING_FACE_HUB_TOKEN` / the token
    /// file (`HF_TOKEN_PATH`, default `$HF_HOME/token`), `HF_HUB_OFFLINE` (1, true, yes, on).
    pub fn from_env() -> Self {
        let home = hf_home();
        let cache_dir =
            env("HF_HUB_CACHE").or_else(|| env("HUGGINGFACE_HUB_CACHE")).map(PathBuf::from).unwrap_or_else(|| home.join("hub"));
        let token = env("HF_TOKEN").or_else(|| env("HUGGING_FACE_HUB_TOKEN")).or_else(|| {
            let path = env("HF_TOKEN_PATH").map(PathBuf::from).unwrap_or_else(|| home.join("token"));
            std::fs::read_to_string(path).ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
        });
        let offline =
            env("HF_HUB_OFFLINE").is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"));
        HubOptions {
            endpoint: env("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.into()).trim_end_matches('/').to_string(),
            cache_dir,
            token,
            offline,
            progress: false,
        }
    }

    pub fn with_progress(mut self, progress: bool) -> Self {
        self.progress = progress;
        self
    }

    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into().trim_end_matches('/').to_string();
        self
    }

    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = dir.into();
        self
    }

    pub fn with_offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }
}

/// What a `--model` / `base_model` string names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    Local(PathBuf),
    Hub { repo_id: String, revision: String },
}

/// `org/name` with the Hub's characters (letters, digits, `-`, `_`, `.`; no `..`).
pub fn is_repo_id(s: &str) -> bool {
    let Some((owner, name)) = s.split_once('/') else { return false };
    let ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 96
            && !p.contains("..")
            && !p.starts_with(['-', '.'])
            && !p.ends_with('.')
            && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    ok(owner) && ok(name)
}

impl ModelRef {
    /// An existing path is local. Otherwise `org/name` or `org/name@revision` is a Hub repo;
    /// anything else is taken as a (missing) local path, so the caller's error names it.
    pub fn parse(s: &str) -> ModelRef {
        let path = Path::new(s);
        if path.exists() || s.starts_with(['.', '/', '~']) {
            return ModelRef::Local(path.to_path_buf());
        }
        let (id, revision) = match s.split_once('@') {
            Some((id, rev)) if !rev.is_empty() => (id, rev),
            _ => (s, DEFAULT_REVISION),
        };
        if is_repo_id(id) {
            ModelRef::Hub { repo_id: id.to_string(), revision: revision.to_string() }
        } else {
            ModelRef::Local(path.to_path_buf())
        }
    }
}

/// A sentence-transformers file of a model repo: what [`crate::SentenceTransformerFolder`] reads.
pub fn is_sentence_transformers_file(name: &str) -> bool {
    matches!(name, "modules.json" | "sentence_bert_config.json" | "config_sentence_transformers.json" | "tokenizer_config.json")
        || name.strip_suffix("_Pooling/config.json").is_some_and(|stem| !stem.contains('/'))
}

/// The files of a Hub repo that a caller needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// A zsc ONNX bundle: `manifest.json`, then the encoder, head and tokenizer it names.
    Bundle,
    /// A Hugging Face encoder folder (a base model, or a zsc checkpoint): `config.json`,
    /// `model.safetensors`, `tokenizer.json`, and `zsc_checkpoint.json` / `calibration.json` and
    /// the sentence-transformers files (`modules.json`, `1_Pooling/config.json`, ...) when the
    /// repo has them.
    Bert,
    /// Every file of the repo (a `snapshot_download`).
    All,
}

/// A local folder for `model`: the folder itself, or the Hub repo's snapshot in the cache with
/// the `wanted` files present. Blocking (runs its own tokio runtime, on a helper thread when
/// called from inside one).
pub fn resolve(model: &str, wanted: Wanted, options: &HubOptions) -> Result<PathBuf> {
    match ModelRef::parse(model) {
        ModelRef::Local(p) => Ok(p),
        ModelRef::Hub { repo_id, revision } => fetch(&repo_id, &revision, wanted, options),
    }
}

/// Fetch `wanted` of `repo_id@revision` into the cache; returns the snapshot folder.
pub fn fetch(repo_id: &str, revision: &str, wanted: Wanted, options: &HubOptions) -> Result<PathBuf> {
    let fetcher = Fetcher::new(repo_id, revision, options)?;
    block_on(fetcher.run(wanted))
}

fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    let run = move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
        match rt {
            Ok(rt) => Ok(rt.block_on(future)),
            Err(e) => Err(e),
        }
    };
    let result = if tokio::runtime::Handle::try_current().is_ok() {
        // a runtime cannot block inside another one: run ours on a scoped helper thread
        std::thread::scope(|s| s.spawn(run).join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    } else {
        run()
    };
    match result {
        Ok(v) => v,
        // building a current-thread runtime only fails if the OS refuses an event fd or a timer
        Err(e) => panic!("cannot start a tokio runtime: {e}"),
    }
}

struct Fetcher {
    repo_id: String,
    revision: String,
    options: HubOptions,
    /// `<cache>/models--org--name`
    repo_dir: PathBuf,
    api: Option<ApiRepo>,
}

impl Fetcher {
    fn new(repo_id: &str, revision: &str, options: &HubOptions) -> Result<Self> {
        if !is_repo_id(repo_id) {
            return Err(HubError::NotAModel(repo_id.to_string()));
        }
        let repo = Repo::with_revision(repo_id.to_string(), RepoType::Model, revision.to_string());
        let repo_dir = options.cache_dir.join(repo.folder_name());
        let api = if options.offline {
            None
        } else {
            let api = ApiBuilder::from_cache(Cache::new(options.cache_dir.clone()))
                .with_endpoint(options.endpoint.clone())
                .with_token(options.token.clone())
                .with_progress(options.progress)
                .with_user_agent("zsc", env!("CARGO_PKG_VERSION"))
                .build()
                .map_err(|e| HubError::Remote {
                    repo: repo_id.into(),
                    revision: revision.into(),
                    endpoint: options.endpoint.clone(),
                    message: format!("cannot build the HTTP client: {e}"),
                })?;
            Some(api.repo(repo))
        };
        Ok(Fetcher { repo_id: repo_id.into(), revision: revision.into(), options: options.clone(), repo_dir, api })
    }

    fn remote(&self, message: String) -> HubError {
        HubError::Remote {
            repo: self.repo_id.clone(),
            revision: self.revision.clone(),
            endpoint: self.options.endpoint.clone(),
            message,
        }
    }

    fn not_cached(&self, why: String) -> HubError {
        HubError::NotCached {
            repo: self.repo_id.clone(),
            revision: self.revision.clone(),
            cache: self.options.cache_dir.clone(),
            why,
        }
    }

    /// The commit `refs/<revision>` points to (a full commit hash names itself).
    fn cached_commit(&self) -> Option<String> {
        if self.revision.len() == 40 && self.revision.chars().all(|c| c.is_ascii_hexdigit()) {
            return Some(self.revision.clone());
        }
        let text = std::fs::read_to_string(self.repo_dir.join("refs").join(&self.revision)).ok()?;
        Some(text.trim().to_string()).filter(|c| !c.is_empty())
    }

    async fn run(self, wanted: Wanted) -> Result<PathBuf> {
        let online = match &self.api {
            None => None,
            Some(api) => match api.info().await {
                Ok(info) => Some((info.sha, info.siblings.into_iter().map(|s| s.rfilename).collect::<Vec<_>>())),
                Err(e) => {
                    let status = match &e {
                        ApiError::RequestError(r) => r.status(),
                        _ => None,
                    };
                    match status {
                        Some(s) if s.as_u16() == 401 || s.as_u16() == 403 || s.as_u16() == 404 => {
                            return Err(self.remote(format!(
                                "HTTP {s}: repo or revision not found, or private and no valid token (set HF_TOKEN)"
                            )))
                        }
                        Some(s) => return Err(self.remote(format!("HTTP {s} listing the repo"))),
                        // cannot reach the Hub: fall back to a warm cache, as Python does
                        None => {
                            tracing::warn!(
                                "cannot reach {} ({e}); looking for {}@{} in the cache {}",
                                self.options.endpoint,
                                self.repo_id,
                                self.revision,
                                self.options.cache_dir.display()
                            );
                            None
                        }
                    }
                }
            },
        };
        match online {
            Some((commit, files)) => self.fetch_online(&commit, &files, wanted).await,
            None => self.cached(wanted),
        }
    }

    fn snapshot(&self, commit: &str) -> PathBuf {
        self.repo_dir.join("snapshots").join(commit)
    }

    fn cached(&self, wanted: Wanted) -> Result<PathBuf> {
        let commit = self.cached_commit().ok_or_else(|| self.not_cached(format!("no refs/{}", self.revision)))?;
        let dir = self.snapshot(&commit);
        if !dir.is_dir() {
            return Err(self.not_cached(format!("no snapshot {commit}")));
        }
        let needed: Vec<String> = match wanted {
            Wanted::Bundle => bundle_file_names(&dir, &self.repo_id)?,
            Wanted::Bert => {
                vec![checkpoint_files::BERT_CONFIG.into(), checkpoint_files::WEIGHTS.into(), checkpoint_files::TOKENIZER.into()]
            }
            // a partial snapshot cannot be told from a whole one without the file list
            Wanted::All => vec![],
        };
        if let Some(missing) = needed.iter().find(|f| !dir.join(f).is_file()) {
            return Err(self.not_cached(format!("snapshot {commit} lacks {missing}")));
        }
        tracing::info!("using the cached {}@{} ({})", self.repo_id, self.revision, dir.display());
        Ok(dir)
    }

    async fn fetch_online(&self, commit: &str, files: &[String], wanted: Wanted) -> Result<PathBuf> {
        let dir = self.snapshot(commit);
        let needed: Vec<String> = match wanted {
            Wanted::Bundle => {
                self.fetch_file(commit, files, bundle_files::MANIFEST, "").await?;
                bundle_file_names(&dir, &self.repo_id)?
            }
            Wanted::Bert => {
                let mut v: Vec<String> = vec![
                    checkpoint_files::BERT_CONFIG.into(),
                    checkpoint_files::WEIGHTS.into(),
                    checkpoint_files::TOKENIZER.into(),
                ];
                for optional in [checkpoint_files::INFO, crate::calibration::CHECKPOINT_CALIBRATION_FILE] {
                    if files.iter().any(|f| f == optional) {
                        v.push(optional.into());
                    }
                }
                // the sentence-transformers folder: pooling, normalisation, prompts, length
                v.extend(files.iter().filter(|f| is_sentence_transformers_file(f)).cloned());
                v
            }
            Wanted::All => files.to_vec(),
        };
        let hint = match wanted {
            Wanted::Bert => " (a base model must be an encoder in safetensors with a tokenizer.json)",
            Wanted::Bundle => " (is it a zsc ONNX bundle? `export` writes them)",
            Wanted::All => "",
        };
        for f in &needed {
            self.fetch_file(commit, files, f, hint).await?;
        }
        // `refs/<revision>` follows the Hub even when every file was already cached
        let refs = self.repo_dir.join("refs");
        let ref_path = refs.join(&self.revision);
        if let Some(parent) = ref_path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| HubError::Io { path: parent.to_path_buf(), source })?;
        }
        crate::manifest::write_atomic(&ref_path, commit.as_bytes())
            .map_err(|e| HubError::Io { path: ref_path.clone(), source: std::io::Error::other(e.to_string()) })?;
        Ok(dir)
    }

    /// One file into `snapshots/<commit>/`, unless it is there already.
    async fn fetch_file(&self, commit: &str, files: &[String], file: &str, hint: &str) -> Result<()> {
        let target = self.snapshot(commit).join(file);
        if target.is_file() {
            return Ok(());
        }
        if !files.iter().any(|f| f == file) {
            return Err(HubError::MissingFile {
                repo: self.repo_id.clone(),
                revision: self.revision.clone(),
                file: file.into(),
                hint: hint.into(),
            });
        }
        let Some(api) = &self.api else { return Err(self.not_cached(format!("{file} is missing"))) };
        let path = api.download(file).await.map_err(|source| HubError::Download {
            repo: self.repo_id.clone(),
            revision: self.revision.clone(),
            file: file.into(),
            source,
        })?;
        // hf-hub files it under the commit of the file's own answer (X-Repo-Commit); the revision
        // can move between the listing and the download, so check it landed where we look
        if path != target {
            return Err(self.remote(format!(
                "{file} was served from another commit than the listing's {commit} (the revision moved while downloading? run again)"
            )));
        }
        Ok(())
    }
}

/// The file names a bundle's `manifest.json` (in `dir`) lists.
fn bundle_file_names(dir: &Path, repo: &str) -> Result<Vec<String>> {
    let m = BundleManifest::load(dir).map_err(|source| HubError::Manifest { repo: repo.into(), source })?;
    Ok(vec![bundle_files::MANIFEST.into(), m.encoder, m.head, m.tokenizer])
}

/// A local folder for `repo_id`: the argument itself if it is an existing folder, else every file
/// of the Hub repo at `revision` in the cache of `options` (`trainer pull`). Blocking; may be
/// called from inside a tokio runtime.
pub fn pull(repo_id: &str, revision: &str, options: &HubOptions) -> Result<PathBuf> {
    let local = Path::new(repo_id);
    if local.is_dir() {
        return Ok(local.to_path_buf());
    }
    fetch(repo_id, revision, Wanted::All, options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_refs() {
        assert_eq!(ModelRef::parse("org/name"), ModelRef::Hub { repo_id: "org/name".into(), revision: "main".into() });
        assert_eq!(ModelRef::parse("org/name@v1.0"), ModelRef::Hub { repo_id: "org/name".into(), revision: "v1.0".into() });
        for local in ["./org/name", "/abs/x", "bundles", "a/b/c", "org/../x", "~/m"] {
            assert!(matches!(ModelRef::parse(local), ModelRef::Local(_)), "{local}");
        }
        // an existing folder wins even if it reads like a repo id
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("org/name")).unwrap();
        let p = d.path().join("org/name");
        assert_eq!(ModelRef::parse(p.to_str().unwrap()), ModelRef::Local(p));
        assert!(is_repo_id("sentence-transformers/all-MiniLM-L6-v2"));
        assert!(!is_repo_id("a/b c") && !is_repo_id("-a/b") && !is_repo_id("a/"));
    }

    #[test]
    fn offline_cold_cache_is_a_clear_error() {
        let d = tempfile::tempdir().unwrap();
        let o = HubOptions::from_env().with_cache_dir(d.path()).with_offline(true);
        let e = fetch("org/name", "main", Wanted::Bundle, &o).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("org/name@main") && msg.contains("not in the local Hugging Face cache"), "{msg}");
        assert!(format!("{o:?}").contains("offline: true"));
    }

    #[test]
    fn offline_warm_cache_uses_refs() {
        // the layout Python's huggingface_hub writes: refs/main -> commit, snapshots/<commit>/
        let d = tempfile::tempdir().unwrap();
        let repo = d.path().join("models--org--name");
        let snap = repo.join("snapshots").join("c0ffee");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs").join("main"), "c0ffee\n").unwrap();
        for f in ["config.json", "model.safetensors"] {
            std::fs::write(snap.join(f), b"{}").unwrap();
        }
        let o = HubOptions::from_env().with_cache_dir(d.path()).with_offline(true);
        let e = fetch("org/name", "main", Wanted::Bert, &o).unwrap_err();
        assert!(e.to_string().contains("lacks tokenizer.json"), "{e}");
        std::fs::write(snap.join("tokenizer.json"), b"{}").unwrap();
        assert_eq!(fetch("org/name", "main", Wanted::Bert, &o).unwrap(), snap);
        // works from inside a tokio runtime too (helper thread)
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        assert_eq!(rt.block_on(async { fetch("org/name", "main", Wanted::All, &o) }).unwrap(), snap);
    }
}
