//! `create-dataset`: a zero-shot training set from an OpenAI-compatible chat-completions API.
//!
//! 1. A pool of `n_topics` broad topics is asked for (several requests if needed, deduplicated)
//!    and saved to `<out>.topics.json`.
//! 2. A seeded plan draws, for every item index, 3 distinct topics from the pool (distinct
//!    combinations until all are used). The plan depends only on (pool, seed), and item `i` does
//!    not depend on `n_samples`, so a run can be resumed or extended.
//! 3. For each planned item one sentence relating to all 3 topics is asked for; the record's
//!    labels are the planned topics, never the model's words. Records are validated and appended
//!    to `<out>.partial.jsonl` as they complete (keyed by index), so an interrupted run continues
//!    where it stopped without asking for or writing anything twice.
//! 4. When every index is present, `--out` is written atomically as a JSON list of
//!    `{"text", "labels"}` that `zsc_core::data::parse_samples` accepts.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use zsc_core::data::Sample;
use zsc_core::rng::SplitMix64;

use crate::chat::{ChatClient, Message, OutputSchema};
use crate::error::{DatagenError, Result};
use zsc_core::http::retry::RetryPolicy;
use zsc_core::http::secrets::{secret_from_env, Secret};

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";
/// Topics per generated sentence.
pub const LABELS_PER_SAMPLE: usize = 3;

/// Command-line flags of `create-dataset`. Every flag is optional on the command line; a flag
/// wins over the `create_dataset:` section of `--config`, which wins over the defaults.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct CreateDatasetArgs {
    /// Output data file (JSON list of {"text", "labels"}). Work files go beside it:
    /// `<out>.partial.jsonl` and `<out>.topics.json`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// YAML file with a `create_dataset:` section holding any of these settings.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// OpenAI-compatible API root [default: https://api.openai.com/v1].
    #[arg(long)]
    pub base_url: Option<String>,
    /// Chat model name [default: gpt-4o-mini].
    #[arg(long)]
    pub model: Option<String>,
    /// Size of the topic (label) pool [default: 100].
    #[arg(long)]
    pub n_topics: Option<usize>,
    /// Number of sentences to generate [default: 1000].
    #[arg(long)]
    pub n_samples: Option<usize>,
    /// Seed of the label-set plan [default: 42].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Requests in flight at once [default: 8].
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Per-request timeout in seconds [default: 60].
    #[arg(long)]
    pub timeout_secs: Option<f64>,
    /// Retries per request on 429, 5xx, timeouts and malformed answers [default: 6].
    #[arg(long)]
    pub max_retries: Option<u32>,
    /// Delay before the first retry in milliseconds; doubles each retry [default: 500].
    #[arg(long)]
    pub retry_base_ms: Option<u64>,
    /// Topics asked for per topic request [default: 50].
    #[arg(long)]
    pub topics_per_request: Option<usize>,
    /// Sampling temperature sent to the model [default: not sent].
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Stop (as if interrupted) after this many new items; for testing resumption.
    #[arg(long, hide = true)]
    pub stop_after: Option<usize>,
}

/// The `create_dataset:` section of a YAML settings file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateDatasetSection {
    pub out: Option<PathBuf>,
    pub base_url: Option<String>,
    pub model: Option<String>,
    pub n_topics: Option<usize>,
    pub n_samples: Option<usize>,
    pub seed: Option<u64>,
    pub concurrency: Option<usize>,
    pub timeout_secs: Option<f64>,
    pub max_retries: Option<u32>,
    pub retry_base_ms: Option<u64>,
    pub topics_per_request: Option<usize>,
    pub temperature: Option<f64>,
}

/// Resolved settings of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateDatasetSettings {
    pub out: PathBuf,
    pub base_url: String,
    pub model: String,
    pub n_topics: usize,
    pub n_samples: usize,
    pub seed: u64,
    pub concurrency: usize,
    pub timeout: Duration,
    pub max_retries: u32,
    pub retry_base: Duration,
    pub topics_per_request: usize,
    pub temperature: Option<f64>,
    pub stop_after: Option<usize>,
}

impl CreateDatasetSettings {
    /// Flags over the `--config` section over defaults, then validated.
    pub fn resolve(args: &CreateDatasetArgs) -> Result<Self> {
        let section = match &args.config {
            Some(path) => load_section(path)?
                .ok_or_else(|| DatagenError::WorkFile { path: path.clone(), message: "no `create_dataset:` section".into() })?,
            // Like `trainer train`, look at ./config.yml when no file is named; there the
            // section is optional.
            None if Path::new("config.yml").is_file() => match load_section(Path::new("config.yml")) {
                Ok(section) => section.unwrap_or_default(),
                Err(e) => {
                    tracing::warn!("ignoring ./config.yml for create-dataset settings: {e}");
                    CreateDatasetSection::default()
                }
            },
            None => CreateDatasetSection::default(),
        };
        let out = args.out.clone().or(section.out).ok_or_else(|| {
            DatagenError::Config("no output file: pass --out FILE (or `out:` in the create_dataset section)".into())
        })?;
        let timeout_secs = args.timeout_secs.or(section.timeout_secs).unwrap_or(60.0);
        if !(timeout_secs.is_finite() && timeout_secs > 0.0) {
            return Err(DatagenError::Config(format!("--timeout-secs must be > 0, got {timeout_secs}")));
        }
        let s = CreateDatasetSettings {
            out,
            base_url: args.base_url.clone().or(section.base_url).unwrap_or_else(|| DEFAULT_BASE_URL.into()),
            model: args.model.clone().or(section.model).unwrap_or_else(|| DEFAULT_MODEL.into()),
            n_topics: args.n_topics.or(section.n_topics).unwrap_or(100),
            n_samples: args.n_samples.or(section.n_samples).unwrap_or(1000),
            seed: args.seed.or(section.seed).unwrap_or(42),
            concurrency: args.concurrency.or(section.concurrency).unwrap_or(8),
            timeout: Duration::from_secs_f64(timeout_secs),
            max_retries: args.max_retries.or(section.max_retries).unwrap_or(6),
            retry_base: Duration::from_millis(args.retry_base_ms.or(section.retry_base_ms).unwrap_or(500)),
            topics_per_request: args.topics_per_request.or(section.topics_per_request).unwrap_or(50),
            temperature: args.temperature.or(section.temperature),
            stop_after: args.stop_after,
        };
        s.validate()?;
        Ok(s)
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(DatagenError::Config(m));
        if self.n_topics < LABELS_PER_SAMPLE {
            return bad(format!("--n-topics must be at least {LABELS_PER_SAMPLE}, got {}", self.n_topics));
        }
        if self.n_samples == 0 {
            return bad("--n-samples must be at least 1".into());
        }
        if self.concurrency == 0 {
            return bad("--concurrency must be at least 1".into());
        }
        if self.topics_per_request == 0 {
            return bad("--topics-per-request must be at least 1".into());
        }
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            return bad(format!("--base-url must start with http:// or https://, got `{}`", self.base_url));
        }
        if self.model.trim().is_empty() {
            return bad("--model is empty".into());
        }
        if let Some(t) = self.temperature {
            if !(t.is_finite() && (0.0..=2.0).contains(&t)) {
                return bad(format!("--temperature must be in [0, 2], got {t}"));
            }
        }
        Ok(())
    }

    pub fn partial_path(&self) -> PathBuf {
        with_suffix(&self.out, ".partial.jsonl")
    }

    pub fn topics_path(&self) -> PathBuf {
        with_suffix(&self.out, ".topics.json")
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy { max_retries: self.max_retries, base_delay: self.retry_base, max_delay: Duration::from_secs(30) }
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s: OsString = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The `create_dataset:` section of a YAML file (other keys are ignored), if there is one.
fn load_section(path: &Path) -> Result<Option<CreateDatasetSection>> {
    let text = std::fs::read_to_string(path).map_err(|e| DatagenError::io(path, e))?;
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|source| DatagenError::Yaml { path: path.to_path_buf(), source })?;
    match doc.get("create_dataset").cloned() {
        None => Ok(None),
        Some(section) => {
            serde_yaml::from_value(section).map(Some).map_err(|source| DatagenError::Yaml { path: path.to_path_buf(), source })
        }
    }
}

/// What a finished (or stopped) run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    pub n_topics: usize,
    /// Items found in the work file at start.
    pub resumed: usize,
    /// Items generated by this run.
    pub generated: usize,
    /// True when `--out` was written (every index present).
    pub completed: bool,
}

/// `trainer create-dataset`: resolve settings, read the API key (`OPENAI_API_KEY`, env or
/// `./.env`), generate, write. Synchronous; builds its own tokio runtime.
pub fn run_create_dataset(args: CreateDatasetArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    let settings = CreateDatasetSettings::resolve(&args).context("create-dataset settings")?;
    let api_key = secret_from_env(&["OPENAI_API_KEY"]);
    if api_key.is_none() {
        if settings.base_url.trim_end_matches('/') == DEFAULT_BASE_URL {
            anyhow::bail!("OPENAI_API_KEY is not set (environment or ./.env); it is required for {DEFAULT_BASE_URL}");
        }
        tracing::warn!("OPENAI_API_KEY is not set; sending requests to {} without authorization", settings.base_url);
    }
    let rt = crate::runtime()?;
    let summary =
        rt.block_on(create_dataset(&settings, api_key)).with_context(|| format!("create-dataset {}", settings.out.display()))?;
    if summary.completed {
        println!(
            "wrote {} ({} samples over {} topics; {} generated now, {} resumed)",
            settings.out.display(),
            settings.n_samples,
            summary.n_topics,
            summary.generated,
            summary.resumed
        );
    } else {
        println!(
            "stopped after {} new item(s); {} of {} done in {}; run again to continue",
            summary.generated,
            summary.resumed + summary.generated,
            settings.n_samples,
            settings.partial_path().display()
        );
    }
    Ok(())
}

/// The whole procedure (async; the library entry point used by tests).
pub async fn create_dataset(settings: &CreateDatasetSettings, api_key: Option<Secret>) -> Result<RunSummary> {
    settings.validate()?;
    if let Some(dir) = settings.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| DatagenError::io(dir, e))?;
    }
    let client = ChatClient::new(
        &settings.base_url,
        &settings.model,
        api_key,
        settings.timeout,
        settings.retry_policy(),
        settings.temperature,
    )?;
    let topics = ensure_topic_pool(&client, settings).await?;
    let plan = plan_label_sets(topics.len(), settings.n_samples, settings.seed);
    let planned_labels: Vec<Vec<String>> = plan.iter().map(|set| set.iter().map(|&t| topics[t].clone()).collect()).collect();
    generate_items(&client, settings, &planned_labels, topics.len()).await
}

// ---------------------------------------------------------------------------------------------
// Topic pool

/// `<out>.topics.json`: the pool and the seed the plan is drawn with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TopicPoolFile {
    pub model: String,
    pub seed: u64,
    pub topics: Vec<String>,
}

#[derive(Deserialize)]
struct TopicsAnswer {
    topics: Vec<String>,
}

#[derive(Deserialize)]
struct SentenceAnswer {
    text: String,
}

pub fn topics_schema() -> OutputSchema {
    OutputSchema {
        name: "topic_pool",
        schema: json!({
            "type": "object",
            "properties": {"topics": {"type": "array", "items": {"type": "string"}}},
            "required": ["topics"],
            "additionalProperties": false,
        }),
    }
}

pub fn sentence_schema() -> OutputSchema {
    OutputSchema {
        name: "sentence",
        schema: json!({
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
            "additionalProperties": false,
        }),
    }
}

const SYSTEM_PROMPT: &str = "You help build a dataset for zero-shot text classification. \
Answer only with JSON that follows the given schema.";

pub fn topics_messages(k: usize, already: &[String]) -> Vec<Message> {
    let mut user = format!(
        "List {k} distinct, broad, high-level topics that everyday texts can be about, one to three words each \
         (for example \"sports\", \"personal finance\", \"climate change\"). Cover many different areas of life, \
         science, culture, business and society. Put them in the `topics` field."
    );
    if !already.is_empty() {
        user.push_str(&format!(" Do not repeat any of these topics: {}.", already.join(", ")));
    }
    vec![Message::system(SYSTEM_PROMPT), Message::user(user)]
}

pub fn sentence_messages(labels: &[String]) -> Vec<Message> {
    let quoted: Vec<String> = labels.iter().map(|l| format!("\"{l}\"")).collect();
    let user = format!(
        "Write one realistic sentence of 12 to 40 words that is clearly about all of these topics at once: {}. \
         Vary the style (news, chat message, review, question, report). Put only the sentence in the `text` field.",
        quoted.join(", ")
    );
    vec![Message::system(SYSTEM_PROMPT), Message::user(user)]
}

/// Trim, collapse whitespace, drop a trailing full stop; `None` for unusable topics.
fn clean_topic(raw: &str) -> Option<String> {
    let t = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    let t = t.trim_end_matches('.').trim().to_string();
    (!t.is_empty() && t.chars().count() <= 80).then_some(t)
}

async fn ensure_topic_pool(client: &ChatClient, settings: &CreateDatasetSettings) -> Result<Vec<String>> {
    let path = settings.topics_path();
    if path.exists() {
        let text = std::fs::read_to_string(&path).map_err(|e| DatagenError::io(&path, e))?;
        let saved: TopicPoolFile =
            serde_json::from_str(&text).map_err(|source| DatagenError::Json { path: path.clone(), source })?;
        if saved.topics.len() != settings.n_topics || saved.seed != settings.seed {
            return Err(DatagenError::WorkFile {
                path,
                message: format!(
                    "holds {} topics for seed {}, but this run asks for --n-topics {} --seed {}; use the same \
                     settings to resume, or delete this file and the .partial.jsonl beside it to start over",
                    saved.topics.len(),
                    saved.seed,
                    settings.n_topics,
                    settings.seed
                ),
            });
        }
        tracing::info!("reusing the topic pool in {}", path.display());
        return Ok(saved.topics);
    }

    let n = settings.n_topics;
    let mut pool: Vec<String> = Vec::with_capacity(n);
    let mut seen: HashSet<String> = HashSet::new();
    let max_requests = 3 * n.div_ceil(settings.topics_per_request) + 3;
    let schema = topics_schema();
    for request in 0..max_requests {
        if pool.len() >= n {
            break;
        }
        let k = (n - pool.len()).min(settings.topics_per_request);
        let messages = topics_messages(k, &pool);
        let answer: TopicsAnswer = client
            .complete_json("topic pool", &messages, &schema, |a: TopicsAnswer| {
                if a.topics.is_empty() {
                    Err("empty topic list".into())
                } else {
                    Ok(a)
                }
            })
            .await?;
        let before = pool.len();
        for raw in answer.topics {
            if pool.len() >= n {
                break;
            }
            if let Some(t) = clean_topic(&raw) {
                if seen.insert(t.to_lowercase()) {
                    pool.push(t);
                }
            }
        }
        tracing::info!("topic request {}: {} new, {} of {n}", request + 1, pool.len() - before, pool.len());
    }
    if pool.len() < n {
        return Err(DatagenError::Protocol(format!(
            "only {} distinct topics after {max_requests} requests, {n} wanted (lower --n-topics?)",
            pool.len()
        )));
    }
    let file = TopicPoolFile { model: settings.model.clone(), seed: settings.seed, topics: pool.clone() };
    zsc_core::manifest::write_json_atomic(&path, &file)?;
    Ok(pool)
}

// ---------------------------------------------------------------------------------------------
// Plan

/// For each item index, 3 distinct topic indices. Combinations (as sets) do not repeat until all
/// `C(n_topics, 3)` were used. Item `i` is the same for any `n_samples > i` (prefix-stable).
pub fn plan_label_sets(n_topics: usize, n_samples: usize, seed: u64) -> Vec<[usize; LABELS_PER_SAMPLE]> {
    assert!(n_topics >= LABELS_PER_SAMPLE, "plan_label_sets needs at least 3 topics");
    let n = n_topics as u64;
    let total_combos = n * (n - 1) * (n - 2) / 6;
    let mut rng = SplitMix64::new(seed ^ 0x5A5C_DA7A_0000_0003);
    let mut used: HashSet<[usize; LABELS_PER_SAMPLE]> = HashSet::new();
    let mut plan = Vec::with_capacity(n_samples);
    while plan.len() < n_samples {
        if used.len() as u64 >= total_combos {
            used.clear();
        }
        let a = rng.below(n) as usize;
        let mut b = rng.below(n) as usize;
        while b == a {
            b = rng.below(n) as usize;
        }
        let mut c = rng.below(n) as usize;
        while c == a || c == b {
            c = rng.below(n) as usize;
        }
        let mut key = [a, b, c];
        key.sort_unstable();
        if used.insert(key) {
            plan.push([a, b, c]);
        }
    }
    plan
}

// ---------------------------------------------------------------------------------------------
// Items and the work file

/// One line of `<out>.partial.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ItemRecord {
    pub index: usize,
    pub text: String,
    pub labels: Vec<String>,
}

/// A record is written only if its text is non-empty and its labels are exactly the planned ones.
pub fn validate_record(record: &ItemRecord, planned: &[Vec<String>]) -> std::result::Result<(), String> {
    let Some(expected) = planned.get(record.index) else {
        return Err(format!("index {} is outside the plan of {} items", record.index, planned.len()));
    };
    if record.text.trim().is_empty() {
        return Err(format!("item {}: empty text", record.index));
    }
    if record.labels.len() != LABELS_PER_SAMPLE || &record.labels != expected {
        return Err(format!("item {}: labels {:?} are not the planned {:?}", record.index, record.labels, expected));
    }
    let distinct: HashSet<&String> = record.labels.iter().collect();
    if distinct.len() != LABELS_PER_SAMPLE {
        return Err(format!("item {}: labels are not distinct", record.index));
    }
    Ok(())
}

/// Read the work file: complete lines only (a line cut by a crash is dropped and the file
/// truncated to its last newline, so the next append starts on a clean line). Records beyond the
/// plan are ignored; records whose labels differ from the plan are an error (other settings).
pub fn load_partial(path: &Path, planned: &[Vec<String>]) -> Result<BTreeMap<usize, ItemRecord>> {
    let mut done = BTreeMap::new();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(done),
        Err(e) => return Err(DatagenError::io(path, e)),
    };
    let complete_len = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    if complete_len < bytes.len() {
        tracing::warn!("{}: dropping an incomplete last line (interrupted write)", path.display());
        let f = std::fs::OpenOptions::new().write(true).open(path).map_err(|e| DatagenError::io(path, e))?;
        f.set_len(complete_len as u64).map_err(|e| DatagenError::io(path, e))?;
    }
    let text = std::str::from_utf8(&bytes[..complete_len])
        .map_err(|e| DatagenError::WorkFile { path: path.to_path_buf(), message: format!("not UTF-8: {e}") })?;
    for (lineno, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: ItemRecord = serde_json::from_str(line)
            .map_err(|e| DatagenError::WorkFile { path: path.to_path_buf(), message: format!("line {}: {e}", lineno + 1) })?;
        if record.index >= planned.len() {
            continue;
        }
        validate_record(&record, planned).map_err(|m| DatagenError::WorkFile {
            path: path.to_path_buf(),
            message: format!(
                "line {}: {m}; this work file belongs to other settings (delete it and the .topics.json to start over)",
                lineno + 1
            ),
        })?;
        if done.contains_key(&record.index) {
            tracing::warn!("{}: line {}: item {} twice, keeping the first", path.display(), lineno + 1, record.index);
            continue;
        }
        done.insert(record.index, record);
    }
    Ok(done)
}

/// Newlines inside a generated sentence would make a multi-line sample; fold them.
fn clean_sentence(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn generate_items(
    client: &ChatClient,
    settings: &CreateDatasetSettings,
    planned: &[Vec<String>],
    n_topics: usize,
) -> Result<RunSummary> {
    let partial = settings.partial_path();
    let mut done = load_partial(&partial, planned)?;
    let resumed = done.len();
    let pending: Vec<usize> = (0..planned.len()).filter(|i| !done.contains_key(i)).collect();
    if resumed > 0 {
        tracing::info!("resuming: {resumed} of {} items already in {}", planned.len(), partial.display());
    }

    let pb = indicatif::ProgressBar::new(planned.len() as u64);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} sentences [{elapsed_precise} < {eta}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb.set_position(resumed as u64);

    let mut file =
        std::fs::OpenOptions::new().create(true).append(true).open(&partial).map_err(|e| DatagenError::io(&partial, e))?;

    let schema = sentence_schema();
    let mut stream = futures_util::stream::iter(pending.into_iter().map(|index| {
        let labels = planned[index].clone();
        let schema = &schema;
        async move {
            let what = format!("item {index}");
            let result = client
                .complete_json(&what, &sentence_messages(&labels), schema, |a: SentenceAnswer| {
                    let text = clean_sentence(&a.text);
                    if text.is_empty() {
                        Err("empty sentence".into())
                    } else {
                        Ok(SentenceAnswer { text })
                    }
                })
                .await;
            (index, labels, result)
        }
    }))
    .buffer_unordered(settings.concurrency);

    let mut generated = 0usize;
    let mut failed = 0usize;
    let mut stopped = false;
    while let Some((index, labels, result)) = stream.next().await {
        match result {
            Ok(answer) => {
                let record = ItemRecord { index, text: answer.text, labels };
                validate_record(&record, planned).map_err(DatagenError::Protocol)?;
                let mut line =
                    serde_json::to_string(&record).map_err(|source| DatagenError::Json { path: partial.clone(), source })?;
                line.push('\n');
                // One write per line, flushed at once: a crash can cut at most the last line.
                file.write_all(line.as_bytes()).and_then(|_| file.flush()).map_err(|e| DatagenError::io(&partial, e))?;
                done.insert(index, record);
                generated += 1;
                pb.inc(1);
                if settings.stop_after.is_some_and(|k| generated >= k) {
                    stopped = true;
                    break;
                }
            }
            Err(e @ DatagenError::RetriesExhausted { .. }) => {
                failed += 1;
                pb.suspend(|| tracing::warn!("{e}"));
            }
            // Not retryable (bad key, unknown model, ...): every other item would fail the same way.
            Err(e) => {
                pb.abandon();
                return Err(e);
            }
        }
    }
    drop(stream);
    file.sync_all().map_err(|e| DatagenError::io(&partial, e))?;
    pb.finish_and_clear();

    if stopped {
        return Ok(RunSummary { n_topics, resumed, generated, completed: false });
    }
    if failed > 0 {
        return Err(DatagenError::Incomplete { failed, done: done.len(), total: planned.len() });
    }
    write_output(&settings.out, &done, planned.len())?;
    Ok(RunSummary { n_topics, resumed, generated, completed: true })
}

/// Write `--out` atomically once all `total` indices are present, checked by the contract's parser.
fn write_output(out: &Path, done: &BTreeMap<usize, ItemRecord>, total: usize) -> Result<()> {
    let samples: Vec<Sample> = (0..total)
        .map(|i| {
            done.get(&i)
                .map(|r| Sample { text: r.text.clone(), labels: r.labels.clone(), source: None })
                .ok_or_else(|| DatagenError::Protocol(format!("item {i} is missing")))
        })
        .collect::<Result<_>>()?;
    let text = serde_json::to_string_pretty(&samples).map_err(|source| DatagenError::Json { path: out.to_path_buf(), source })?;
    let (_, duplicates) = zsc_core::data::parse_samples(&text, out)?;
    if duplicates > 0 {
        tracing::warn!("{}: {duplicates} duplicate sample(s) (same text and labels); loaders drop them", out.display());
    }
    zsc_core::manifest::write_atomic(out, text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_seeded_distinct_and_prefix_stable() {
        let a = plan_label_sets(8, 40, 7);
        let b = plan_label_sets(8, 60, 7);
        assert_eq!(a[..], b[..40]);
        assert_ne!(a, plan_label_sets(8, 40, 8));
        let mut sets = HashSet::new();
        for s in &a {
            assert!(s[0] != s[1] && s[1] != s[2] && s[0] != s[2] && s.iter().all(|&t| t < 8));
            let mut k = *s;
            k.sort_unstable();
            assert!(sets.insert(k), "combination repeated before all 56 were used");
        }
        // 4 topics have only 4 combinations: they repeat, but each item stays valid.
        let small = plan_label_sets(4, 10, 1);
        assert_eq!(small.len(), 10);
    }

    #[test]
    fn partial_file_drops_cut_line_and_rejects_foreign_labels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.partial.jsonl");
        let planned = vec![vec!["a".to_string(), "b".into(), "c".into()], vec!["b".to_string(), "c".into(), "d".into()]];
        std::fs::write(&path, "{\"index\":1,\"text\":\"t\",\"labels\":[\"b\",\"c\",\"d\"]}\n{\"index\":0,\"te").unwrap();
        let done = load_partial(&path, &planned).unwrap();
        assert_eq!(done.keys().copied().collect::<Vec<_>>(), vec![1]);
        assert!(std::fs::read_to_string(&path).unwrap().ends_with("]}\n"));
        std::fs::write(&path, "{\"index\":0,\"text\":\"t\",\"labels\":[\"x\",\"b\",\"c\"]}\n").unwrap();
        assert!(load_partial(&path, &planned).is_err());
    }

    #[test]
    fn settings_precedence_and_validation() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.yml");
        std::fs::write(&cfg, "model_type: bi_encoder\ncreate_dataset:\n  out: data/x.json\n  n_topics: 12\n  seed: 5\n").unwrap();
        let args = CreateDatasetArgs { config: Some(cfg.clone()), seed: Some(9), ..Default::default() };
        let s = CreateDatasetSettings::resolve(&args).unwrap();
        assert_eq!((s.n_topics, s.seed, s.out.clone()), (12, 9, PathBuf::from("data/x.json")));
        assert_eq!(s.partial_path(), PathBuf::from("data/x.json.partial.jsonl"));
        std::fs::write(&cfg, "create_dataset:\n  n_topiks: 3\n").unwrap();
        assert!(CreateDatasetSettings::resolve(&args).is_err());
        let args = CreateDatasetArgs { out: Some("o.json".into()), n_topics: Some(2), ..Default::default() };
        assert!(CreateDatasetSettings::resolve(&args).is_err());
        std::fs::write(&cfg, "model_type: bi_encoder\n").unwrap();
        assert!(CreateDatasetSettings::resolve(&args).is_err(), "a named file must have the section");
    }

    #[test]
    fn flags_parse_with_clap() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: CreateDatasetArgs,
        }
        let cli = Cli::try_parse_from([
            "x",
            "--out",
            "o.json",
            "--base-url",
            "http://h/v1",
            "--model",
            "m",
            "--n-topics",
            "20",
            "--n-samples",
            "7",
            "--seed",
            "3",
            "--concurrency",
            "2",
            "--timeout-secs",
            "1.5",
            "--max-retries",
            "1",
            "--retry-base-ms",
            "5",
            "--topics-per-request",
            "4",
            "--temperature",
            "0.7",
        ])
        .unwrap();
        let s = CreateDatasetSettings::resolve(&cli.args).unwrap();
        assert_eq!(s.timeout, Duration::from_millis(1500));
        assert_eq!((s.n_topics, s.n_samples, s.seed, s.concurrency, s.topics_per_request), (20, 7, 3, 2, 4));
        assert_eq!((s.base_url.as_str(), s.model.as_str(), s.temperature), ("http://h/v1", "m", Some(0.7)));
    }
}
