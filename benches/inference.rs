//! Inference throughput of the runtime (criterion): MiniLM exported as a bi-encoder, plus the
//! three tiny test models, classifying a batch of mixed-length texts against cached labels.
//!
//! `cargo bench -p runtime --bench inference` (bundles are exported into the target tmp folder first).

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use runtime::{Classifier, ClassifierOptions};
use zsc_core::fixtures::{base_model_dir, write_tiny_bert, TinyBert};

const TEXTS: [&str; 8] = [
    "hi",
    "how do i transfer money to my savings account",
    "set an alarm for six",
    "what is a good recipe for banana bread with walnuts and a little cinnamon on top",
    "my card was declined",
    "book a table for two at the italian place downtown for friday night at eight",
    "weather tomorrow",
    "i would like to know the balance of my checking account and my last three transactions",
];
const LABELS: [&str; 10] =
    ["banking", "cooking", "alarm", "restaurant reservation", "weather", "travel", "music", "sports", "shopping", "health"];

fn bench_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-bundles")
}

fn export(src: &Path, name: &str) -> PathBuf {
    let out = bench_dir().join(name);
    export::export_bundle(src, &out, &export::ExportOptions::default()).expect("export");
    out
}

fn bench(c: &mut Criterion) {
    let tiny_src = bench_dir().join("tiny-checkpoint");
    write_tiny_bert(&tiny_src, TinyBert::default()).expect("tiny bert");
    let mut bundles = vec![("tiny_bi", export(&tiny_src, "tiny-bi"))];
    if base_model_dir().join("model.safetensors").exists() {
        bundles.push(("minilm_bi", export(&base_model_dir(), "minilm-bi")));
    }
    let texts: Vec<&str> = TEXTS.iter().cycle().take(64).copied().collect();
    let mut group = c.benchmark_group("classify_64_texts_10_labels");
    group.sample_size(10);
    group.throughput(Throughput::Elements(texts.len() as u64));
    for (name, dir) in &bundles {
        for batch_size in [8, 32] {
            let clf = Classifier::from_dir(dir, ClassifierOptions::default().with_batch_size(batch_size)).expect("load");
            let cache = clf.encode_labels(&LABELS).expect("labels");
            group.bench_with_input(BenchmarkId::new(*name, format!("batch{batch_size}")), &texts, |b, texts| {
                b.iter(|| clf.classify_with(texts, &cache).expect("classify"))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
