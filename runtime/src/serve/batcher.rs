//! Dynamic batching: request handlers put jobs on a bounded [`Queue`]; worker threads take all
//! that is waiting (up to `max_batch` texts), run the encoder once per label set over the texts of
//! every job that shares it, and send each job its rows back. Jobs whose requester went away
//! (timeout, closed connection) are dropped unrun.
//!
//! When to start a batch: a worker that finds jobs waiting starts at once unless requests are
//! *arriving* — accepted, their bodies being read and parsed, about to be queued ([`Arriving`]).
//! Then it waits for them, up to `max_wait` after the oldest queued job, or until `max_batch`
//! texts are queued. A lone request never waits; under concurrent load the batch takes everyone
//! who is already at the door, which matters on few cores, where the encoder's threads and the
//! HTTP threads take turns and a worker that starts at the first job keeps running tiny batches.
//!
//! The encoder runs on plain threads, never on the async runtime's: one inference takes
//! milliseconds to seconds of CPU, which would stall every connection sharing that thread.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::classifier::{Classifier, LabelSet};
use crate::label::Label;

use super::metrics::Metrics;

/// What a worker sends back: the rows of the job, or a message for a 500 answer.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, String>>;
/// Score or embedding rows, one per text.
pub(crate) type Rows = Vec<Vec<f32>>;
/// The texts of one job and where its rows go.
type RowJob = (Vec<String>, Reply<Rows>);

pub(crate) enum Work {
    /// Score `texts` against an encoded label set.
    Classify { texts: Vec<String>, labels: Arc<LabelSet>, reply: Reply<Rows> },
    /// Mean-pooled embeddings of `texts`.
    Embed { texts: Vec<String>, reply: Reply<Rows> },
    /// Encode a new label set (an LRU cache miss).
    EncodeLabels { labels: Vec<Label>, reply: Reply<LabelSet> },
}

impl Work {
    /// Encoder inputs the job holds: what the queue bound counts.
    fn size(&self) -> usize {
        match self {
            Work::Classify { texts, .. } | Work::Embed { texts, .. } => texts.len(),
            Work::EncodeLabels { labels, .. } => labels.iter().map(Label::views).sum(),
        }
    }

    fn abandoned(&self) -> bool {
        match self {
            Work::Classify { reply, .. } | Work::Embed { reply, .. } => reply.is_closed(),
            Work::EncodeLabels { reply, .. } => reply.is_closed(),
        }
    }
}

struct Job {
    work: Work,
    size: usize,
    enqueued: Instant,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    size: usize,
    closed: bool,
    /// What this queue last added to the shared gauges (texts, jobs): several models' queues
    /// share one `Metrics`, so each adds its change.
    published: (i64, i64),
}

/// The queue is full: the request gets 503 with Retry-After.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueFull {
    pub waiting: usize,
    pub max: usize,
}

pub(crate) struct Queue {
    state: Mutex<State>,
    ready: Condvar,
    max_size: usize,
    metrics: Arc<Metrics>,
    /// Requests between being accepted and putting their job on the queue.
    arriving: Arc<AtomicUsize>,
}

/// A request on its way to the queue (counted while it lives): workers wait for it to join the
/// next batch. Drop it when the job is queued or the request gives up.
pub(crate) struct Arriving(Arc<AtomicUsize>);

impl Drop for Arriving {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How often a waiting worker looks at the arriving count (arrivals that end without a job do
/// not notify).
const ARRIVING_POLL: Duration = Duration::from_micros(500);

impl Queue {
    pub(crate) fn new(max_size: usize, metrics: Arc<Metrics>) -> Self {
        Queue {
            state: Mutex::new(State::default()),
            ready: Condvar::new(),
            max_size,
            metrics,
            arriving: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Count a request as on its way to the queue until the guard is dropped.
    pub(crate) fn arriving(&self) -> Arriving {
        self.arriving.fetch_add(1, Ordering::Relaxed);
        Arriving(self.arriving.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add a job unless that would put more than `max_size` texts in the queue.
    pub(crate) fn push(&self, work: Work) -> Result<(), QueueFull> {
        let size = work.size();
        let mut s = self.lock();
        if s.closed || s.size + size > self.max_size {
            return Err(QueueFull { waiting: s.size, max: self.max_size });
        }
        s.size += size;
        s.jobs.push_back(Job { work, size, enqueued: Instant::now() });
        self.publish(&mut s);
        drop(s);
        self.ready.notify_one();
        Ok(())
    }

    /// No more jobs; workers finish what is queued, then stop.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    fn publish(&self, s: &mut State) {
        let now = (s.size as i64, s.jobs.len() as i64);
        self.metrics.queue_texts.fetch_add(now.0 - s.published.0, Ordering::Relaxed);
        self.metrics.queue_jobs.fetch_add(now.1 - s.published.1, Ordering::Relaxed);
        s.published = now;
    }

    /// The next batch: blocks until a job is waiting, then gives the oldest jobs up to
    /// `max_batch` texts (a bigger job goes alone). While requests are arriving it first waits for
    /// them, up to `max_wait` after the oldest queued job. `None` once closed and empty.
    fn next_batch(&self, max_batch: usize, max_wait: Duration) -> Option<Vec<Job>> {
        let mut s = self.lock();
        loop {
            while s.jobs.is_empty() {
                if s.closed {
                    return None;
                }
                s = self.ready.wait(s).unwrap_or_else(|p| p.into_inner());
            }
            let deadline = s.jobs[0].enqueued + max_wait;
            while s.size < max_batch && !s.closed && self.arriving.load(Ordering::Relaxed) > 0 {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                let nap = (deadline - now).min(ARRIVING_POLL);
                s = self.ready.wait_timeout(s, nap).unwrap_or_else(|p| p.into_inner()).0;
            }
            let mut batch = Vec::new();
            let mut texts = 0;
            while let Some(job) = s.jobs.front() {
                if !batch.is_empty() && texts + job.size > max_batch {
                    break;
                }
                let Some(job) = s.jobs.pop_front() else { break };
                s.size -= job.size;
                if job.work.abandoned() {
                    continue;
                }
                texts += job.size;
                batch.push(job);
            }
            self.publish(&mut s);
            if !batch.is_empty() {
                return Some(batch);
            }
        }
    }
}

/// A worker: runs batches until the queue is closed and drained.
pub(crate) fn run_worker(classifier: Arc<Classifier>, queue: Arc<Queue>, max_batch: usize, max_wait: Duration) {
    while let Some(batch) = queue.next_batch(max_batch, max_wait) {
        run_batch(&classifier, &queue.metrics, batch);
    }
}

fn run_batch(clf: &Classifier, metrics: &Metrics, batch: Vec<Job>) {
    let mut embeds: Vec<RowJob> = Vec::new();
    // classify jobs grouped by label set, in arrival order
    let mut groups: Vec<(Arc<LabelSet>, Vec<RowJob>)> = Vec::new();
    for job in batch {
        match job.work {
            Work::EncodeLabels { labels, reply } => {
                let started = Instant::now();
                let result = guarded(|| clf.encode_labels(&labels));
                metrics.batch_seconds.observe(started.elapsed().as_secs_f64());
                let _ = reply.send(result);
            }
            Work::Embed { texts, reply } => embeds.push((texts, reply)),
            Work::Classify { texts, labels, reply } => match groups.iter_mut().find(|(l, _)| Arc::ptr_eq(l, &labels)) {
                Some((_, jobs)) => jobs.push((texts, reply)),
                None => groups.push((labels, vec![(texts, reply)])),
            },
        }
    }
    let max_chunk = clf.batch_size();
    for (labels, jobs) in groups {
        let n = run_group(metrics, jobs, max_chunk, |texts| guarded(|| clf.scores(texts, &*labels)));
        metrics.texts_classified.fetch_add(n as u64, Ordering::Relaxed);
    }
    if !embeds.is_empty() {
        let n = run_group(metrics, embeds, max_chunk, |texts| {
            guarded(|| clf.embed(texts)).map(|a| a.outer_iter().map(|r| r.to_vec()).collect())
        });
        metrics.texts_embedded.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// One encoder pass over the texts of several jobs (in length-matched chunks, see
/// [`length_chunks`]); each job gets its own rows back.
fn run_group(metrics: &Metrics, jobs: Vec<RowJob>, max_chunk: usize, f: impl Fn(&[String]) -> Result<Rows, String>) -> usize {
    let texts: Vec<String> = jobs.iter().flat_map(|(t, _)| t.iter().cloned()).collect();
    let n = texts.len();
    metrics.batch_texts.observe(n as f64);
    let started = Instant::now();
    let result = run_chunked(&texts, max_chunk, f);
    metrics.batch_seconds.observe(started.elapsed().as_secs_f64());
    match result {
        Ok(mut rows) if rows.len() == n => {
            // hand out the rows back to front, so each job's slice is split off without copying
            for (texts, reply) in jobs.into_iter().rev() {
                let mine = rows.split_off(rows.len() - texts.len());
                let _ = reply.send(Ok(mine));
            }
        }
        Ok(rows) => {
            let msg = format!("internal error: {} result rows for {n} texts", rows.len());
            for (_, reply) in jobs {
                let _ = reply.send(Err(msg.clone()));
            }
        }
        Err(msg) => {
            for (_, reply) in jobs {
                let _ = reply.send(Err(msg.clone()));
            }
        }
    }
    n
}

/// Run `f` over `texts` in chunks of similar length and put the rows back in input order.
fn run_chunked(texts: &[String], max_chunk: usize, f: impl Fn(&[String]) -> Result<Rows, String>) -> Result<Rows, String> {
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| texts[i].chars().count());
    let lengths: Vec<usize> = order.iter().map(|&i| texts[i].chars().count()).collect();
    let mut rows: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
    for span in length_chunks(&lengths, max_chunk) {
        let idx = &order[span];
        let chunk: Vec<String> = idx.iter().map(|&i| texts[i].clone()).collect();
        let out = f(&chunk)?;
        if out.len() != chunk.len() {
            return Err(format!("internal error: {} result rows for {} texts", out.len(), chunk.len()));
        }
        for (&i, row) in idx.iter().zip(out) {
            rows[i] = row;
        }
    }
    Ok(rows)
}

/// Chunks of a batch sorted by length (`lengths` ascending, characters as a stand-in for tokens):
/// a chunk closes at `max_chunk` texts, or — once it holds [`MIN_CHUNK`] — when the next text
/// would pad it by more than [`PADDING_SLACK`] (padded tokens over real ones). A dynamic batch of
/// 40 CLINC150 texts cut into fixed chunks of 32 is about 27 % padding; cut like this about 11 %.
/// (A batch sorted over all of a file, as the in-process throughput example does, is 2 %.)
pub(crate) fn length_chunks(lengths: &[usize], max_chunk: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut sum) = (0usize, 0usize);
    for (i, &len) in lengths.iter().enumerate() {
        let n = i - start;
        let len = len.max(1);
        let too_padded = n >= MIN_CHUNK && (len * (n + 1)) as f64 > (sum + len) as f64 * (1.0 + PADDING_SLACK);
        if n > 0 && (n >= max_chunk.max(1) || too_padded) {
            out.push(start..i);
            start = i;
            sum = 0;
        }
        sum += len;
    }
    if start < lengths.len() {
        out.push(start..lengths.len());
    }
    out
}

/// See [`length_chunks`].
const MIN_CHUNK: usize = 8;
const PADDING_SLACK: f64 = 0.15;

/// Run inference, turning an error or a panic into a message (a panic must not take the worker
/// thread, and with it every later request, down).
fn guarded<T>(f: impl FnOnce() -> crate::Result<T>) -> Result<T, String> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(zsc_core::error::error_chain(&e)),
        Err(_) => Err("internal error: inference panicked".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn embed_job(n: usize) -> (Work, oneshot::Receiver<Result<Rows, String>>) {
        let (tx, rx) = oneshot::channel();
        (Work::Embed { texts: vec!["x".into(); n], reply: tx }, rx)
    }

    #[test]
    fn batches_fill_up_to_max_and_skip_abandoned_jobs() {
        let q = Queue::new(10, Arc::new(Metrics::default()));
        let (a, _ra) = embed_job(3);
        let (b, rb) = embed_job(3);
        let (c, _rc) = embed_job(3);
        q.push(a).unwrap();
        q.push(b).unwrap();
        q.push(c).unwrap();
        let (d, _rd) = embed_job(2);
        let full = q.push(d).unwrap_err();
        assert_eq!((full.waiting, full.max), (9, 10));
        drop(rb); // its requester went away
        let batch = q.next_batch(6, Duration::ZERO).unwrap();
        // a (3) then b is skipped, c (3) fits: 6 texts
        assert_eq!(batch.iter().map(|j| j.size).collect::<Vec<_>>(), [3, 3]);
        assert_eq!(q.lock().size, 0);
        // a job bigger than max_batch goes alone
        let (e, _re) = embed_job(8);
        q.push(e).unwrap();
        assert_eq!(q.next_batch(4, Duration::ZERO).unwrap().len(), 1);
        q.close();
        assert!(q.next_batch(4, Duration::ZERO).is_none());
        assert!(q.push(embed_job(1).0).is_err(), "closed queues take nothing");
    }

    #[test]
    fn chunks_close_on_size_or_padding_and_rows_come_back_in_order() {
        // 8 short texts, then a jump: the ninth would pad the chunk far over 15 %
        let lengths = [10, 10, 10, 10, 10, 10, 10, 10, 40, 41, 42];
        assert_eq!(length_chunks(&lengths, 32), vec![0..8, 8..11]);
        // fewer than MIN_CHUNK texts never close on padding
        assert_eq!(length_chunks(&[1, 50, 100], 32), vec![0..3]);
        // max_chunk
        assert_eq!(length_chunks(&[5; 10], 4), vec![0..4, 4..8, 8..10]);
        assert!(length_chunks(&[], 4).is_empty());
        // every index exactly once, rows back in input order
        let texts: Vec<String> = (0..50).map(|i| "x".repeat(1 + (i * 37) % 23)).collect();
        let rows = run_chunked(&texts, 8, |chunk| {
            assert!(chunk.len() <= 8);
            Ok(chunk.iter().map(|t| vec![t.len() as f32]).collect())
        })
        .unwrap();
        assert_eq!(rows, texts.iter().map(|t| vec![t.len() as f32]).collect::<Vec<_>>());
    }

    #[test]
    fn waits_for_arriving_requests_only() {
        let q = Arc::new(Queue::new(100, Arc::new(Metrics::default())));
        // nobody arriving: a lone job goes at once, however long max_wait is
        let (a, _ra) = embed_job(1);
        q.push(a).unwrap();
        let started = Instant::now();
        assert_eq!(q.next_batch(8, Duration::from_secs(5)).unwrap().len(), 1);
        assert!(started.elapsed() < Duration::from_secs(1));

        // one request arriving: the worker waits for it to join
        let (a, _ra) = embed_job(1);
        q.push(a).unwrap();
        let coming = q.arriving();
        let q2 = q.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            let (b, rb) = embed_job(1);
            q2.push(b).unwrap();
            drop(coming);
            rb
        });
        let started = Instant::now();
        let batch = q.next_batch(8, Duration::from_secs(5)).unwrap();
        assert_eq!(batch.len(), 2, "the arriving job joined the batch");
        assert!(started.elapsed() < Duration::from_secs(4), "no waiting once nobody is arriving");
        let _ = t.join();

        // an arrival that never comes costs at most max_wait
        let (a, _ra) = embed_job(1);
        q.push(a).unwrap();
        let _stuck = q.arriving();
        let started = Instant::now();
        assert_eq!(q.next_batch(8, Duration::from_millis(30)).unwrap().len(), 1);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(25) && waited < Duration::from_secs(2), "{waited:?}");
    }
}
