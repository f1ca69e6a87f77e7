//! Inference speed of the runtime (criterion), on the real MiniLM exported as each architecture.
//!
//! ```text
//! cargo bench                             # from the workspace root; nothing to export by hand
//! cargo bench -p zsc                  # the same benches, only the runtime crate built
//! cargo bench -p zsc -- bi_encoder    # one architecture (f32 and int8)
//! cargo bench -p zsc -- int8          # the int8 bundles only (`zsc-export --quantize int8`)
//! ZSC_BENCH_QUICK=1 cargo bench -p zsc # without 256 long texts per call (the slowest case)
//! ```
//! Bundles come from `benches/speed_bundles.rs` (cached in `target/speed-bundles/`, built on first
//! use): `models/all-MiniLM-L6-v2` as a bi-encoder, and with random untrained poly/ColBERT heads
//! (speed does not depend on the weights' values), each as f32 (`bi_encoder/...`) and as
//! `zsc-export --quantize int8` (`bi_encoder_int8/...`). For each bundle:
//! - `latency_1_text_300_labels/{short,long}`: one text against 300 cached labels;
//! - `latency_preset_1_text_300_labels/{short,long}`: the same with `ClassifierOptions::latency()`
//!   (spinning off: the settings for a service; the group above uses 2 threads, spinning on);
//! - `throughput/{short,long}_{32,256}`: one `scores` call of 32 or 256 texts (batch size 32);
//! - `encode_300_labels`: encoding 300 labels into a `LabelSet`.
//!
//! Short texts are real CLINC150 test texts of about 16 tokens (`data/clinc150_test.json`); long
//! texts (about 128 tokens, the bundles' max_length) are consecutive CLINC150 texts joined by ". ".
//! The 300 labels are CLINC150's 150 intents plus the same 150 as "question about <intent>".
//! ONNX Runtime uses 2 intra-op threads. Timings are not run in CI (no timed tests).

mod speed_bundles;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use zsc::{Classifier, ClassifierOptions};
use zsc_core::tokenize::TextTokenizer;
use zsc_core::Quantization;

const THREADS: usize = 2;
const SHORT_TOKENS: std::ops::RangeInclusive<usize> = 14..=18;
const LONG_TOKENS: usize = 120;

struct Workload {
    short: Vec<String>,
    long: Vec<String>,
    labels: Vec<String>,
}

fn token_count(tok: &TextTokenizer, text: &str) -> usize {
    tok.encode_batch(&[text]).map(|b| b.real_len(0)).unwrap_or(0)
}

/// Short and long texts measured with the bundle's own tokenizer ([CLS]/[SEP] included).
fn workload(tokenizer_json: &std::path::Path) -> Workload {
    let (texts, intents) = speed_bundles::load_clinc(&speed_bundles::clinc_test_path()).expect("CLINC150 test data");
    // Untruncated counts for building long texts; the bundle truncates at max_length anyway.
    let tok = TextTokenizer::from_file(tokenizer_json, 512).expect("tokenizer");
    let short: Vec<String> = texts.iter().filter(|t| SHORT_TOKENS.contains(&token_count(&tok, t))).take(256).cloned().collect();
    assert!(short.len() >= 256, "only {} CLINC150 texts have {SHORT_TOKENS:?} tokens", short.len());
    let mut long = Vec::with_capacity(256);
    let mut current = String::new();
    for t in texts.iter().cycle() {
        if long.len() == 256 {
            break;
        }
        if !current.is_empty() {
            current.push_str(". ");
        }
        current.push_str(t);
        if token_count(&tok, &current) >= LONG_TOKENS {
            long.push(std::mem::take(&mut current));
        }
    }
    let mut labels = intents.clone();
    labels.extend(intents.iter().map(|l| format!("question about {l}")));
    assert_eq!(labels.len(), 300, "CLINC150 should have 150 intents");
    Workload { short, long, labels }
}

fn bench(c: &mut Criterion) {
    // ZSC_BENCH_QUICK=1 skips the slowest case (256 long texts, ~10 s per call on 2 cores).
    let quick = std::env::var_os("ZSC_BENCH_QUICK").is_some();
    let mut workload_cache: Option<Workload> = None;
    let bundles = speed_bundles::ALL_TYPES.into_iter().flat_map(|t| [(t, Quantization::None), (t, Quantization::Int8)]);
    for (model_type, quantization) in bundles {
        let name = speed_bundles::speed_bundle_name(model_type, quantization);
        let dir = speed_bundles::ensure_speed_bundle_quantized(model_type, quantization).expect("speed bundle");
        println!(
            "[{name}] bundle {} (real MiniLM {}{})",
            dir.display(),
            zsc_testkit::fixtures::base_model_dir().display(),
            if model_type == zsc_core::ModelType::BiEncoder { "" } else { " + random untrained head" }
        );
        let w = workload_cache.get_or_insert_with(|| workload(&dir.join("tokenizer.json")));
        let clf = Classifier::from_dir(&dir, ClassifierOptions::default().with_intra_threads(THREADS).with_batch_size(32))
            .expect("load bundle");
        let cache = clf.encode_labels(&w.labels).expect("labels");

        let mut group = c.benchmark_group(format!("{name}/latency_1_text_300_labels"));
        group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
        group.throughput(Throughput::Elements(1));
        for (name, text) in [("short", &w.short[0]), ("long", &w.long[0])] {
            group.bench_with_input(BenchmarkId::from_parameter(name), text, |b, text| {
                b.iter(|| clf.scores(&[text.as_str()], &cache).expect("classify"))
            });
        }
        group.finish();

        let service = Classifier::from_dir(&dir, ClassifierOptions::latency()).expect("load bundle");
        let service_cache = service.encode_labels(&w.labels).expect("labels");
        let mut group = c.benchmark_group(format!("{name}/latency_preset_1_text_300_labels"));
        group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
        group.throughput(Throughput::Elements(1));
        for (name, text) in [("short", &w.short[0]), ("long", &w.long[0])] {
            group.bench_with_input(BenchmarkId::from_parameter(name), text, |b, text| {
                b.iter(|| service.scores(&[text.as_str()], &service_cache).expect("classify"))
            });
        }
        group.finish();
        drop(service);

        let mut group = c.benchmark_group(format!("{name}/throughput"));
        group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
        let mut cases = vec![("short", &w.short, 32), ("short", &w.short, 256), ("long", &w.long, 32)];
        if !quick {
            cases.push(("long", &w.long, 256));
        }
        for (name, texts, n) in cases {
            let texts = &texts[..n];
            group.throughput(Throughput::Elements(n as u64));
            group.bench_with_input(BenchmarkId::from_parameter(format!("{name}_{n}")), texts, |b, texts| {
                b.iter(|| clf.scores(texts, &cache).expect("classify"))
            });
        }
        group.finish();

        let mut group = c.benchmark_group(format!("{name}/encode_labels"));
        group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
        group.throughput(Throughput::Elements(w.labels.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(w.labels.len()), &w.labels, |b, labels| {
            b.iter(|| clf.encode_labels(labels).expect("encode labels"))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
