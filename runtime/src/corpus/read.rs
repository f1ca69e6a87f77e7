//! Reading a corpus row by row: JSONL, CSV/TSV with a header, or plain text (one text per line).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Value;

use super::CorpusError;

/// How the input file is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InputFormat {
    /// One JSON object per line (`.jsonl`, `.ndjson`).
    Jsonl,
    /// Comma-separated with a header row (`.csv`).
    Csv,
    /// Tab-separated with a header row (`.tsv`, `.tab`).
    Tsv,
    /// One text per line; blank lines are skipped (any other extension).
    Text,
}

impl InputFormat {
    /// The format a file name says (JSONL, CSV, TSV by extension; anything else plain text).
    pub fn from_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("jsonl" | "ndjson") => InputFormat::Jsonl,
            Some("csv") => InputFormat::Csv,
            Some("tsv" | "tab") => InputFormat::Tsv,
            _ => InputFormat::Text,
        }
    }
}

impl std::str::FromStr for InputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "jsonl" | "ndjson" => Ok(InputFormat::Jsonl),
            "csv" => Ok(InputFormat::Csv),
            "tsv" => Ok(InputFormat::Tsv),
            "text" | "txt" => Ok(InputFormat::Text),
            other => Err(format!("unknown input format `{other}`, expected jsonl, csv, tsv or text")),
        }
    }
}

/// One text to classify, with the id its output row carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The line of the input where the row starts (1-based).
    pub line: u64,
    /// The row's `id_field` value, or its line number without one.
    pub id: Value,
    /// The text.
    pub text: String,
}

/// A row that could not be read, with its line (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct BadRow {
    /// Where it starts.
    pub line: u64,
    /// What is wrong with it.
    pub message: String,
}

/// Where the texts are and how to find them in each row.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct InputSpec {
    /// The file (`-`: standard input).
    pub path: PathBuf,
    /// Its layout.
    pub format: InputFormat,
    /// The JSONL key or CSV column of the text.
    pub text_field: String,
    /// The JSONL key or CSV column of each row's id (every row must have it); without one, the
    /// id is the row's line number.
    pub id_field: Option<String>,
}

impl InputSpec {
    /// A file whose format its extension says, texts under `text`, ids by line number.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        InputSpec { format: InputFormat::from_path(&path), path, text_field: "text".into(), id_field: None }
    }

    /// Set the format.
    pub fn with_format(mut self, format: InputFormat) -> Self {
        self.format = format;
        self
    }

    /// Set the text key or column.
    pub fn with_text_field(mut self, field: impl Into<String>) -> Self {
        self.text_field = field.into();
        self
    }

    /// Set the id key or column.
    pub fn with_id_field(mut self, field: Option<String>) -> Self {
        self.id_field = field;
        self
    }

    fn is_stdin(&self) -> bool {
        self.path.as_os_str() == "-"
    }

    /// The file's size in bytes (for progress), unknown for standard input.
    pub fn size(&self) -> Option<u64> {
        (!self.is_stdin()).then(|| std::fs::metadata(&self.path).ok().map(|m| m.len())).flatten()
    }
}

/// A `Read` that counts the bytes it hands out (the progress bar's position).
struct Counting<R> {
    inner: R,
    bytes: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

enum Rows {
    Lines { reader: Box<dyn BufRead>, line: u64, json: bool, buf: Vec<u8> },
    Delimited { reader: csv::Reader<Box<dyn Read>>, text: usize, id: Option<usize>, record: csv::ByteRecord },
}

/// The rows of an input, in order: `Ok(Record)` or `Err(BadRow)` for each, and [`CorpusError`]
/// for what stops the whole read (an unreadable file, a header without the text column).
pub struct CorpusReader {
    rows: Rows,
    spec: InputSpec,
    bytes: Arc<AtomicU64>,
}

impl CorpusReader {
    /// Open the input and read its header (CSV/TSV).
    pub fn open(spec: &InputSpec) -> Result<Self, CorpusError> {
        let bytes = Arc::new(AtomicU64::new(0));
        let io_err = |source| CorpusError::Io { path: spec.path.clone(), source };
        let raw: Box<dyn Read> =
            if spec.is_stdin() { Box::new(std::io::stdin()) } else { Box::new(std::fs::File::open(&spec.path).map_err(io_err)?) };
        let counted: Box<dyn Read> = Box::new(Counting { inner: raw, bytes: bytes.clone() });
        let rows = match spec.format {
            InputFormat::Jsonl | InputFormat::Text => Rows::Lines {
                reader: Box::new(BufReader::with_capacity(1 << 16, counted)),
                line: 0,
                json: spec.format == InputFormat::Jsonl,
                buf: Vec::new(),
            },
            InputFormat::Csv | InputFormat::Tsv => Self::delimited(spec, counted)?,
        };
        Ok(CorpusReader { rows, spec: spec.clone(), bytes })
    }

    fn delimited(spec: &InputSpec, input: Box<dyn Read>) -> Result<Rows, CorpusError> {
        let delimiter = if spec.format == InputFormat::Tsv { b'\t' } else { b',' };
        // TSV has no quoting: a stray `"` in a text stays a character, never merges lines
        let tsv = spec.format == InputFormat::Tsv;
        let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).quoting(!tsv).has_headers(true).from_reader(input);
        let header_err = |message: String| CorpusError::Header { path: spec.path.clone(), message };
        let headers = reader.byte_headers().map_err(|e| header_err(e.to_string()))?.clone();
        let column = |name: &str| headers.iter().position(|h| h == name.as_bytes());
        let names = || headers.iter().map(|h| String::from_utf8_lossy(h).into_owned()).collect::<Vec<_>>().join(", ");
        let text = column(&spec.text_field)
            .ok_or_else(|| header_err(format!("no column `{}` (columns: {}); set the text field", spec.text_field, names())))?;
        let id = match &spec.id_field {
            Some(f) => Some(column(f).ok_or_else(|| header_err(format!("no id column `{f}` (columns: {})", names())))?),
            None => None,
        };
        Ok(Rows::Delimited { reader, text, id, record: csv::ByteRecord::new() })
    }

    /// Bytes of the input read so far (shared with a progress bar).
    pub fn bytes_read(&self) -> Arc<AtomicU64> {
        self.bytes.clone()
    }

    /// The next row, `None` at the end of the input.
    pub fn next_row(&mut self) -> Result<Option<Result<Record, BadRow>>, CorpusError> {
        let io_err = |source| CorpusError::Io { path: self.spec.path.clone(), source };
        match &mut self.rows {
            Rows::Lines { reader, line, json, buf } => loop {
                buf.clear();
                if reader.read_until(b'\n', buf).map_err(io_err)? == 0 {
                    return Ok(None);
                }
                *line += 1;
                let bad = |message: String| BadRow { line: *line, message };
                let Ok(text) = std::str::from_utf8(buf) else {
                    return Ok(Some(Err(bad("not valid UTF-8".into()))));
                };
                let text = text.trim_end_matches(['\n', '\r']);
                let text = if *line == 1 { text.trim_start_matches('\u{feff}') } else { text }; // a UTF-8 BOM
                if text.trim().is_empty() {
                    continue; // blank lines are not rows
                }
                return Ok(Some(if *json {
                    json_record(text, *line, &self.spec)
                } else {
                    Ok(Record { line: *line, id: Value::from(*line), text: text.to_string() })
                }));
            },
            Rows::Delimited { reader, text, id, record } => match reader.read_byte_record(record) {
                Ok(false) => Ok(None),
                Ok(true) => {
                    let line = record.position().map_or(0, |p| p.line());
                    Ok(Some(delimited_record(record, line, *text, *id)))
                }
                Err(e) => match e.kind() {
                    csv::ErrorKind::Io(_) => {
                        Err(CorpusError::Io { path: self.spec.path.clone(), source: std::io::Error::other(e.to_string()) })
                    }
                    _ => {
                        let line = e.position().map_or(0, |p| p.line());
                        Ok(Some(Err(BadRow { line, message: csv_message(&e) })))
                    }
                },
            },
        }
    }
}

fn csv_message(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("{len} fields where the header has {expected_len}")
        }
        _ => e.to_string(),
    }
}

fn json_record(line_text: &str, line: u64, spec: &InputSpec) -> Result<Record, BadRow> {
    let bad = |message: String| BadRow { line, message };
    let value: Value = serde_json::from_str(line_text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let Value::Object(mut row) = value else {
        return Err(bad("not a JSON object".into()));
    };
    let text = match row.remove(&spec.text_field) {
        Some(Value::String(s)) => s,
        Some(other) => return Err(bad(format!("`{}` is not a string: {other}", spec.text_field))),
        None => return Err(bad(format!("no `{}` field", spec.text_field))),
    };
    let id = match &spec.id_field {
        None => Value::from(line),
        Some(f) => match row.remove(f) {
            Some(v @ (Value::String(_) | Value::Number(_))) => v,
            Some(other) => return Err(bad(format!("id `{f}` must be a string or a number, got {other}"))),
            None => return Err(bad(format!("no id field `{f}`"))),
        },
    };
    non_empty(Record { line, id, text })
}

fn delimited_record(record: &csv::ByteRecord, line: u64, text: usize, id: Option<usize>) -> Result<Record, BadRow> {
    let field = |i: usize, what: &str| -> Result<String, BadRow> {
        let bytes = record.get(i).unwrap_or_default();
        String::from_utf8(bytes.to_vec()).map_err(|_| BadRow { line, message: format!("the {what} is not valid UTF-8") })
    };
    let text_value = field(text, "text")?;
    let id = match id {
        Some(i) => Value::String(field(i, "id")?),
        None => Value::from(line),
    };
    non_empty(Record { line, id, text: text_value })
}

fn non_empty(record: Record) -> Result<Record, BadRow> {
    if record.text.trim().is_empty() {
        return Err(BadRow { line: record.line, message: "the text is empty".into() });
    }
    Ok(record)
}
