//! `zsc classify --input`: every input and output format, ids carried through, bad rows, resume
//! after `kill -9` with nothing lost or written twice, no progress output when piped; and pool
//! adaptation in the library (pool scores equal the plain ones, the pieces a distributed pass uses
//! add up to the single-process result, BiEncoder only).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use zsc::adapt::LabelSums;
use zsc::corpus::{classify_file, CorpusError, FileJob, InputSpec};
use zsc::{AdaptOptions, Classifier, ClassifierOptions};

const LABELS: [&str; 3] = ["banking", "cooking", "weather"];

fn zsc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zsc")).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn dir(name: &str) -> PathBuf {
    let d = common::tmp_root().join("corpus").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn texts(n: usize) -> Vec<String> {
    let words = ["transfer", "money", "bake", "bread", "rain", "sunny", "savings", "oven", "storm", "loan", "soup", "wind"];
    (0..n).map(|i| format!("{} {} {} {}", words[i % 12], words[(i / 12) % 12], words[(i * 7 + 3) % 12], i)).collect()
}

fn bundle() -> String {
    common::bundles().bi.to_str().unwrap().to_string()
}

fn classify_args<'a>(b: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["classify", "--model", b, "--label", LABELS[0], "--label", LABELS[1], "--label", LABELS[2]];
    args.extend_from_slice(extra);
    args
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The TEXT path's top label of each text: what every file format must reproduce.
fn reference(b: &str, texts: &[String]) -> Vec<Value> {
    let mut args = classify_args(b, &["--json", "--top-k", "1"]);
    args.extend(texts.iter().map(String::as_str));
    let o = zsc(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    text(&o.stdout).lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["labels"][0].clone()).collect()
}

#[test]
fn every_input_format_carries_ids_and_equals_the_text_path() {
    let b = bundle();
    let d = dir("formats");
    let t = texts(5);
    let want = reference(&b, &t);
    let json_rows: String = t.iter().enumerate().map(|(i, x)| format!("{{\"doc\": \"d{i}\", \"body\": {x:?}}}\n")).collect();
    std::fs::write(d.join("in.jsonl"), json_rows).unwrap();
    let csv_rows: String = t.iter().enumerate().map(|(i, x)| format!("d{i},\"{x}, quoted\"\n")).collect();
    std::fs::write(d.join("in.csv"), format!("doc,body\n{csv_rows}")).unwrap();
    std::fs::write(
        d.join("in.tsv"),
        format!("body\tdoc\n{}", t.iter().enumerate().map(|(i, x)| format!("{x}\td{i}\n")).collect::<String>()),
    )
    .unwrap();
    std::fs::write(d.join("in.txt"), t.iter().map(|x| format!("{x}\n\n")).collect::<String>()).unwrap();

    for (input, ids) in [("in.jsonl", true), ("in.tsv", true), ("in.txt", false)] {
        let (src, out) = (d.join(input), d.join(format!("{input}.out.jsonl")));
        let mut args = classify_args(&b, &["--input", src.to_str().unwrap(), "--output", out.to_str().unwrap()]);
        args.extend(["--top-k", "1", "--text-field", "body"]);
        if ids {
            args.extend(["--id-field", "doc"]);
        }
        let o = zsc(&args);
        assert!(o.status.success(), "{input}: {}", text(&o.stderr));
        assert!(text(&o.stderr).contains("classified 5 rows"), "{}", text(&o.stderr));
        let rows = jsonl(&out);
        assert_eq!(rows.len(), 5, "{input}");
        for (i, row) in rows.iter().enumerate() {
            // without an id field the id is the line number (blank lines skipped, still counted)
            let id = if ids { Value::from(format!("d{i}")) } else { Value::from(2 * i as u64 + 1) };
            assert_eq!(row["id"], id, "{input}");
            assert_eq!(row["labels"][0]["label"], want[i]["label"], "{input} row {i}");
            let (s, w) = (row["labels"][0]["score"].as_f64().unwrap(), want[i]["score"].as_f64().unwrap());
            assert!((s - w).abs() < 1e-4, "{input} row {i}: {s} vs {w}");
        }
    }

    // CSV in, CSV out: a header, the quoted text read whole, label columns per rank
    let (src, out) = (d.join("in.csv"), d.join("out.csv"));
    let args = classify_args(&b, &["--input", src.to_str().unwrap(), "--output", out.to_str().unwrap()]);
    let o = zsc(&[args, vec!["--text-field", "body", "--id-field", "doc", "--top-k", "2"]].concat());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let csv = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "id,label,score,probability,label_2,score_2,probability_2");
    assert_eq!(lines.len(), 6);
    assert!(lines[1].starts_with("d0,") && lines[1].split(',').count() == 7, "{}", lines[1]);
}

#[test]
fn a_bad_row_fails_with_its_line_or_is_skipped_and_counted() {
    let b = bundle();
    let d = dir("bad");
    let input = d.join("in.jsonl");
    std::fs::write(
        &input,
        "{\"text\": \"rain today\"}\n{\"text\": \"bake bread\"\n{\"text\": 3}\n{\"text\": \"  \"}\n{\"text\": \"loan\"}\n",
    )
    .unwrap();
    let out = d.join("out.jsonl");
    let args = classify_args(&b, &["--input", input.to_str().unwrap(), "--output", out.to_str().unwrap()]);
    let o = zsc(&args);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("in.jsonl:2: not JSON") && err.contains("--skip-bad-rows"), "{err}");

    let o = zsc(&[args.clone(), vec!["--skip-bad-rows"]].concat());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("classified 2 rows") && err.contains("3 bad rows skipped"), "{err}");
    assert!(err.contains("in.jsonl:3: `text` is not a string") && err.contains("in.jsonl:4: the text is empty"), "{err}");
    let ids: Vec<Value> = jsonl(&out).iter().map(|r| r["id"].clone()).collect();
    assert_eq!(ids, vec![Value::from(1), Value::from(5)]);

    // a CSV row with a missing field, a header without the text column
    let csv = d.join("in.csv");
    std::fs::write(&csv, "id,text\n1,rain\n2\n").unwrap();
    let o = zsc(&classify_args(&b, &["--input", csv.to_str().unwrap()]));
    assert!(text(&o.stderr).contains("in.csv:3: 1 fields where the header has 2"), "{}", text(&o.stderr));
    let o = zsc(&classify_args(&b, &["--input", csv.to_str().unwrap(), "--text-field", "body"]));
    assert!(text(&o.stderr).contains("no column `body` (columns: id, text)"), "{}", text(&o.stderr));
    let o = zsc(&classify_args(&b, &["--input", d.join("missing.jsonl").to_str().unwrap()]));
    assert!(o.status.code() == Some(1) && text(&o.stderr).contains("missing.jsonl"), "{}", text(&o.stderr));
}

#[test]
fn resume_after_kill_9_loses_and_repeats_nothing() {
    let b = bundle();
    let d = dir("resume");
    let input = d.join("in.jsonl");
    let t = texts(60_000);
    std::fs::write(&input, t.iter().enumerate().map(|(i, x)| format!("{{\"id\": {i}, \"text\": {x:?}}}\n")).collect::<String>())
        .unwrap();
    let full = d.join("full.jsonl");
    let base = classify_args(&b, &["--input", input.to_str().unwrap(), "--id-field", "id", "--top-k", "2"]);
    let o = zsc(&[base.clone(), vec!["--output", full.to_str().unwrap()]].concat());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let expected = std::fs::read(&full).unwrap();

    // killed while writing: resumed output equals the uninterrupted one, byte for byte
    let out = d.join("killed.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_zsc"))
        .args([base.clone(), vec!["--output", out.to_str().unwrap()]].concat())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::fs::metadata(&out).map_or(0, |m| m.len()) < 4096 && started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let partial = std::fs::metadata(&out).unwrap().len() as usize;
    assert!(partial > 0 && partial < expected.len(), "killed after {partial} of {} bytes", expected.len());
    let o = zsc(&[base.clone(), vec!["--output", out.to_str().unwrap(), "--resume"]].concat());
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("after"), "{}", text(&o.stderr));
    assert!(std::fs::read(&out).unwrap() == expected, "resumed output differs from the uninterrupted run");

    // a torn last line (cut in the middle of a row) is dropped and that row written again
    let torn = d.join("torn.jsonl");
    std::fs::write(&torn, &expected[..expected.len() / 2]).unwrap();
    let o = zsc(&[base.clone(), vec!["--output", torn.to_str().unwrap(), "--resume"]].concat());
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(std::fs::read(&torn).unwrap() == expected);

    // an output of another input is refused, not extended
    let other = d.join("other.jsonl");
    std::fs::write(&other, "{\"id\":\"x\",\"labels\":[]}\n").unwrap();
    let o = zsc(&[base, vec!["--output", other.to_str().unwrap(), "--resume"]].concat());
    assert!(text(&o.stderr).contains("is it the output of another input?"), "{}", text(&o.stderr));
}

#[test]
fn piped_runs_draw_no_progress_and_quiet_prints_nothing() {
    let b = bundle();
    let d = dir("quiet");
    let input = d.join("in.txt");
    std::fs::write(&input, texts(50).join("\n")).unwrap();
    let o = zsc(&classify_args(&b, &["--input", input.to_str().unwrap(), "--top-k", "1"]));
    assert!(o.status.success());
    assert_eq!(text(&o.stdout).lines().count(), 50, "JSONL rows on stdout");
    let err = text(&o.stderr);
    assert!(!err.contains('\r') && !err.contains('%') && err.lines().count() == 1, "{err:?}");
    let o = zsc(&classify_args(&b, &["--input", input.to_str().unwrap(), "--quiet"]));
    assert!(o.status.success() && o.stderr.is_empty(), "{}", text(&o.stderr));
}

#[test]
fn adaptation_needs_a_biencoder_and_a_memory_budget() {
    let d = dir("adapt-errors");
    let input = d.join("in.txt");
    std::fs::write(&input, texts(20).join("\n")).unwrap();
    let poly = common::bundles().poly.to_str().unwrap().to_string();
    let o = zsc(&classify_args(&poly, &["--input", input.to_str().unwrap(), "--adapt"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("pool adaptation needs a BiEncoder bundle"), "{}", text(&o.stderr));
    let b = bundle();
    let o = zsc(&classify_args(&b, &["--input", input.to_str().unwrap(), "--adapt", "--adapt-max-memory", "0"]));
    assert!(text(&o.stderr).contains("raise the limit (--adapt-max-memory MiB)"), "{}", text(&o.stderr));
    let o = zsc(&classify_args(&b, &["--input", input.to_str().unwrap(), "--adapt", "--adapt-label-weight", "2"]));
    assert!(text(&o.stderr).contains("label_weight must be between 0 and 1"), "{}", text(&o.stderr));
}

fn classifier() -> Classifier {
    Classifier::from_dir(&common::bundles().bi, ClassifierOptions::default()).unwrap()
}

#[test]
fn pool_scores_equal_plain_scores_and_sums_of_parts_equal_the_whole() {
    let clf = classifier();
    let t = texts(40);
    let labels = clf.encode_labels(&LABELS).unwrap();
    let pool = clf.pool_vectors(&t).unwrap();
    assert_eq!(pool.len(), 40);
    let plain = clf.scores(&t, &labels).unwrap();
    let kept = clf.pool_scores(&pool, &labels).unwrap();
    for (a, b) in plain.iter().flatten().zip(kept.iter().flatten()) {
        assert!((a - b).abs() < 1e-4 * (1.0 + a.abs()), "{a} vs {b}");
    }

    // what a distributed pass does: sums of parts, merged, then one update
    let options = AdaptOptions::default().with_min_pool_per_label(0.0).with_min_texts(1).with_rounds(2);
    let mut current = labels.clone();
    for _ in 0..2 {
        let mut merged = LabelSums::zeros(3, pool.units().ncols());
        for part in [0..13, 13..29, 29..40] {
            let units = pool.units().slice(ndarray::s![part.clone(), ..]).to_owned();
            let piece = zsc::PoolVectors::new(units, pool.norms()[part].to_vec()).unwrap();
            merged.merge(&clf.label_sums(&piece, &current, &options).unwrap());
        }
        assert_eq!(merged.total(), 40);
        current = clf.adapted_labels(&labels, &merged, &options).unwrap().0;
    }
    let whole = clf.adapt_labels(&pool, &labels, &options).unwrap();
    assert_eq!(whole.report.rounds, 2);
    assert!(whole.report.moved > 0, "{:?}", whole.report);
    let a = clf.label_vectors(&current).unwrap();
    let b = clf.label_vectors(&whole.labels).unwrap();
    assert!(a.iter().zip(b.iter()).all(|(x, y)| (x - y).abs() < 1e-6));
    assert!(clf.label_vectors(&labels).unwrap() != b, "the labels moved");

    // the file path gives the library's result
    let d = dir("adapt-file");
    std::fs::write(d.join("in.txt"), t.join("\n")).unwrap();
    let job = FileJob::new(InputSpec::new(d.join("in.txt")), d.join("out.jsonl")).with_top_k(1).with_adapt(Some(options.clone()));
    let summary = classify_file(&clf, &labels, &job).unwrap();
    assert_eq!((summary.rows, summary.adapt.as_ref().unwrap().rounds), (40, 2));
    let (ranked, _) = clf.classify_corpus(&t, &labels, 1, &options).unwrap();
    let rows = jsonl(&d.join("out.jsonl"));
    for (row, r) in rows.iter().zip(&ranked) {
        assert_eq!(row["labels"][0]["label"], r[0].label.as_str());
    }

    // kept in parts (chunks of 7 rows) the pool adapts as one; an interrupted adapted run resumes
    let parts = d.join("parts.jsonl");
    let job = FileJob::new(InputSpec::new(d.join("in.txt")), &parts).with_top_k(1).with_adapt(Some(options)).with_chunk_rows(7);
    classify_file(&clf, &labels, &job).unwrap();
    let full = std::fs::read(&parts).unwrap();
    let labels_of = |bytes: &[u8]| -> Vec<Value> {
        String::from_utf8_lossy(bytes)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["labels"][0]["label"].clone())
            .collect()
    };
    assert_eq!(labels_of(&full), rows.iter().map(|r| r["labels"][0]["label"].clone()).collect::<Vec<_>>());
    std::fs::write(&parts, &full[..full.len() * 2 / 3]).unwrap();
    let resumed = classify_file(&clf, &labels, &job.with_resume(true)).unwrap();
    assert!(resumed.resumed > 0 && resumed.resumed + resumed.rows == 40, "{resumed:?}");
    assert!(std::fs::read(&parts).unwrap() == full, "the resumed adapted output differs");
}

#[test]
fn guards_keep_labels_where_the_pool_says_too_little() {
    let clf = classifier();
    let labels = clf.encode_labels(&LABELS).unwrap();
    let small = clf.pool_vectors(&texts(20)).unwrap(); // 20 texts < 10 per label x 3
    let a = clf.adapt_labels(&small, &labels, &AdaptOptions::default()).unwrap();
    assert!(a.report.skipped.as_deref().unwrap().contains("fewer than 10 per label"));
    assert_eq!(clf.label_vectors(&a.labels).unwrap(), clf.label_vectors(&labels).unwrap());
    // no label reaches min_texts: nothing moves
    let pool = clf.pool_vectors(&texts(40)).unwrap();
    let b = clf.adapt_labels(&pool, &labels, &AdaptOptions::default().with_min_texts(41)).unwrap();
    assert_eq!((b.report.moved, b.report.rounds), (0, 3));
    assert_eq!(clf.label_vectors(&b.labels).unwrap(), clf.label_vectors(&labels).unwrap());
    // PolyEncoder: one clear error
    let poly = Classifier::from_dir(&common::bundles().poly, ClassifierOptions::default()).unwrap();
    let err = poly.pool_vectors(&["x"]).unwrap_err().to_string();
    assert!(err.contains("needs a BiEncoder bundle") && err.contains("poly_encoder"), "{err}");
    // a resume without an output file is refused by the job
    let job = FileJob::new(InputSpec::new("-"), "-").to_stdout(zsc::corpus::OutputFormat::Jsonl).with_resume(true);
    assert!(matches!(classify_file(&clf, &labels, &job), Err(CorpusError::InvalidOption { option: "resume", .. })));
}

#[test]
fn edge_inputs_stay_rows_and_outputs_stay_whole() {
    let b = bundle();
    let d = dir("edges");
    // a UTF-8 BOM before the first JSON row; a stray quote in a TSV text does not swallow lines
    std::fs::write(d.join("bom.jsonl"), "\u{feff}{\"text\": \"rain today\"}\n{\"text\": \"bake bread\"}\n").unwrap();
    std::fs::write(d.join("quote.tsv"), "text\n\"rain today\nbake bread\nloan\n").unwrap();
    for (input, rows) in [("bom.jsonl", 2), ("quote.tsv", 3)] {
        let out = d.join(format!("{input}.jsonl"));
        let o = zsc(&classify_args(&b, &["--input", d.join(input).to_str().unwrap(), "--output", out.to_str().unwrap()]));
        assert!(o.status.success(), "{input}: {}", text(&o.stderr));
        assert_eq!(jsonl(&out).len(), rows, "{input}");
    }
    // every row bad and skipped: the CSV output still has its header
    std::fs::write(d.join("bad.jsonl"), "nope\n").unwrap();
    let csv = d.join("empty.csv");
    let o = zsc(&classify_args(
        &b,
        &["--input", d.join("bad.jsonl").to_str().unwrap(), "--output", csv.to_str().unwrap(), "--skip-bad-rows", "--top-k", "1"],
    ));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), "id,label,score,probability\n");
    // resuming a CSV with another --top-k would append rows of another width: refused
    std::fs::write(d.join("in.txt"), "rain\nbread\n").unwrap();
    let o = zsc(&classify_args(
        &b,
        &["--input", d.join("in.txt").to_str().unwrap(), "--output", csv.to_str().unwrap(), "--resume", "--top-k", "2"],
    ));
    assert!(text(&o.stderr).contains("it has 1 label columns and this run writes 2"), "{}", text(&o.stderr));
}

#[test]
fn pool_scores_aggregate_views_and_refuse_other_widths() {
    let clf = Classifier::from_dir(
        &common::bundles().bi,
        ClassifierOptions::default().with_view_aggregation(zsc::ViewAggregation::Max),
    )
    .unwrap();
    let labels =
        clf.encode_labels(&[zsc::Label::new("banking").with_examples(["wire money", "my savings"]), "cooking".into()]).unwrap();
    let t = texts(9);
    let pool = clf.pool_vectors(&t).unwrap();
    let (plain, kept) = (clf.scores(&t, &labels).unwrap(), clf.pool_scores(&pool, &labels).unwrap());
    for (a, b) in plain.iter().flatten().zip(kept.iter().flatten()) {
        assert!((a - b).abs() < 1e-4 * (1.0 + a.abs()), "{a} vs {b}");
    }
    let narrow = zsc::PoolVectors::new(ndarray::Array2::zeros((2, 5)), vec![1.0, 1.0]).unwrap();
    let err = clf.pool_scores(&narrow, &labels).unwrap_err().to_string();
    assert!(err.contains("vectors of width 5, this bundle's are 32"), "{err}");
    assert!(clf.label_sums(&narrow, &labels, &AdaptOptions::default()).is_err());
}
