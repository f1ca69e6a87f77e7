//! A text longer than max_length is truncated with one warning per process, not an error.
//! (Its own test binary: the warning is once per process.)

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use zsc::{Classifier, ClassifierOptions};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn long_texts_warn_once() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let bundle = common::make_bundle("truncation", zsc_core::ModelType::BiEncoder, None, None);
    let clf = Classifier::from_dir(&bundle, ClassifierOptions::default()).unwrap();
    let long = "word ".repeat(500);
    for _ in 0..3 {
        let s = clf.scores(&[long.as_str(), "short"], &["a label"]).unwrap();
        assert!(s[0][0].is_finite());
    }
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert_eq!(log.matches("truncated").count(), 1, "{log}");
}
