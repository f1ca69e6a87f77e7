//! Writing predictions row by row (JSONL or CSV), whole rows only, and finding where an
//! interrupted output ends so that `--resume` continues after its last complete row.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::CorpusError;
use crate::Prediction;

/// How predictions are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutputFormat {
    /// One `{"id", "labels": [{"label", "score", "probability"}]}` object per line.
    Jsonl,
    /// A header, then `id,label,score,probability[,label_2,score_2,probability_2 ...]` per row.
    Csv,
}

impl OutputFormat {
    /// CSV for a `.csv` name, JSONL otherwise.
    pub fn from_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("csv") => OutputFormat::Csv,
            _ => OutputFormat::Jsonl,
        }
    }
}

impl std::str::FromStr for OutputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "jsonl" | "ndjson" => Ok(OutputFormat::Jsonl),
            "csv" => Ok(OutputFormat::Csv),
            other => Err(format!("unknown output format `{other}`, expected jsonl or csv")),
        }
    }
}

#[derive(serde::Serialize)]
struct JsonRow<'a> {
    id: &'a Value,
    labels: &'a [Prediction],
}

/// Writes whole rows: each chunk is formatted in memory and written with one call, so a crash
/// leaves at most one torn last line, which [`resume_point`] cuts off.
pub struct CorpusWriter {
    out: Box<dyn Write>,
    path: PathBuf,
    format: OutputFormat,
    /// Label columns of a CSV row (the most labels a row can have).
    columns: usize,
    buf: Vec<u8>,
}

/// Where an existing output ends: its complete rows and the last one's id.
#[derive(Debug, Clone, PartialEq)]
pub struct ResumePoint {
    /// Complete rows written.
    pub rows: u64,
    /// Bytes they take (anything after is a torn row, cut off).
    pub bytes: u64,
    /// The id of the last complete row, as written.
    pub last_id: Option<String>,
    /// CSV: the header's label columns (each label, score, probability), which a resumed run must write too.
    pub label_columns: Option<usize>,
}

/// An id as its row writes it (a string without quotes, a number as text).
pub fn id_text(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl CorpusWriter {
    /// Create (or, resuming, append to) `path` (`None`: standard output). `columns`: the most
    /// labels a row can carry (CSV header width).
    pub fn open(path: Option<&Path>, format: OutputFormat, columns: usize, append: bool) -> Result<Self, CorpusError> {
        let shown = path.map_or_else(|| PathBuf::from("-"), Path::to_path_buf);
        let out: Box<dyn Write> = match path {
            None => Box::new(std::io::stdout()),
            Some(p) => {
                let file = OpenOptions::new()
                    .create(true)
                    .write(true)
                    .append(append)
                    .truncate(!append)
                    .open(p)
                    .map_err(|source| CorpusError::Io { path: p.to_path_buf(), source })?;
                Box::new(file)
            }
        };
        let mut w = CorpusWriter { out, path: shown, format, columns, buf: Vec::new() };
        if format == OutputFormat::Csv && !append {
            // written at once, so that an input without a good row still gives a CSV with its header
            w.buf.extend_from_slice(csv_header(columns).as_bytes());
            w.flush_chunk()?;
        }
        Ok(w)
    }

    /// Format one row into the pending chunk.
    pub fn push(&mut self, id: &Value, labels: &[Prediction]) -> Result<(), CorpusError> {
        match self.format {
            OutputFormat::Jsonl => {
                serde_json::to_writer(&mut self.buf, &JsonRow { id, labels })
                    .map_err(|e| CorpusError::Io { path: self.path.clone(), source: e.into() })?;
                self.buf.push(b'\n');
            }
            OutputFormat::Csv => {
                let mut fields = vec![csv_field(&id_text(id))];
                for k in 0..self.columns {
                    match labels.get(k) {
                        Some(p) => fields.extend([csv_field(&p.label), p.score.to_string(), p.probability.to_string()]),
                        None => fields.extend([String::new(), String::new(), String::new()]),
                    }
                }
                self.buf.extend_from_slice(fields.join(",").as_bytes());
                self.buf.push(b'\n');
            }
        }
        Ok(())
    }

    /// Write the pending rows in one call and flush them.
    pub fn flush_chunk(&mut self) -> Result<(), CorpusError> {
        let io_err = |source| CorpusError::Io { path: self.path.clone(), source };
        self.out.write_all(&self.buf).map_err(io_err)?;
        self.out.flush().map_err(io_err)?;
        self.buf.clear();
        Ok(())
    }
}

fn csv_header(columns: usize) -> String {
    let mut names = vec!["id".to_string()];
    for k in 1..=columns {
        let suffix = if k == 1 { String::new() } else { format!("_{k}") };
        names.extend(["label", "score", "probability"].map(|n| format!("{n}{suffix}")));
    }
    names.join(",") + "\n"
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Where the output at `path` ends: its complete rows (JSONL lines, or CSV records after the
/// header), each ending in a line break. A torn last row is not counted.
pub fn resume_point(path: &Path, format: OutputFormat) -> Result<ResumePoint, CorpusError> {
    let io_err = |source| CorpusError::Io { path: path.to_path_buf(), source };
    let mut data = Vec::new();
    File::open(path).map_err(io_err)?.read_to_end(&mut data).map_err(io_err)?;
    let bad = |message: String| CorpusError::Resume { path: path.to_path_buf(), message };
    match format {
        OutputFormat::Jsonl => {
            let end = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let complete = &data[..end];
            let rows = complete.iter().filter(|&&b| b == b'\n').count() as u64;
            let last_id = match complete[..end.saturating_sub(1)].rsplit(|&b| b == b'\n').next() {
                Some(line) if !line.is_empty() => {
                    let v: Value = serde_json::from_slice(line).map_err(|e| bad(format!("its last row is not JSON: {e}")))?;
                    Some(v.get("id").map(id_text).ok_or_else(|| bad("its last row has no `id`".into()))?)
                }
                _ => None,
            };
            Ok(ResumePoint { rows, bytes: end as u64, last_id, label_columns: None })
        }
        OutputFormat::Csv => csv_resume_point(&data).map_err(bad),
    }
}

fn csv_resume_point(data: &[u8]) -> Result<ResumePoint, String> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(data);
    let mut record = csv::ByteRecord::new();
    let (mut rows, mut bytes, mut last_id) = (0u64, 0u64, None);
    let mut width = None;
    while let Ok(true) = reader.read_byte_record(&mut record) {
        let end = reader.position().byte();
        // complete: ends in a line break and has the header's width (a record torn inside a
        // quoted field just after a line break in it has fewer fields)
        let whole = end > 0 && data.get(end as usize - 1) == Some(&b'\n');
        if !whole || width.is_some_and(|w| record.len() != w) {
            break;
        }
        match width {
            None => width = Some(record.len()),
            Some(_) => {
                rows += 1;
                last_id = record.get(0).map(|b| String::from_utf8_lossy(b).into_owned());
            }
        }
        bytes = end;
    }
    let label_columns = width.map(|w| w.saturating_sub(1) / 3);
    Ok(ResumePoint { rows, bytes, last_id, label_columns })
}

/// Cut `path` to its first `bytes` bytes (the torn row of an interrupted run).
pub fn truncate_to(path: &Path, bytes: u64) -> Result<(), CorpusError> {
    let io_err = |source| CorpusError::Io { path: path.to_path_buf(), source };
    let file = OpenOptions::new().write(true).open(path).map_err(io_err)?;
    file.set_len(bytes).map_err(io_err)?;
    let mut file = file;
    file.seek(SeekFrom::End(0)).map_err(io_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_jsonl_row_is_not_counted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.jsonl");
        std::fs::write(&p, "{\"id\":1,\"labels\":[]}\n{\"id\":\"b\",\"labels\":[]}\n{\"id\":3,\"lab").unwrap();
        let r = resume_point(&p, OutputFormat::Jsonl).unwrap();
        assert_eq!((r.rows, r.last_id.as_deref()), (2, Some("b")));
        assert_eq!(r.bytes as usize, "{\"id\":1,\"labels\":[]}\n{\"id\":\"b\",\"labels\":[]}\n".len());
    }

    #[test]
    fn a_torn_csv_record_is_not_counted_even_inside_quotes() {
        let data = "id,label,score,probability\n1,a,1,0.5\n\"x\ny\",b,2,0.7\n3,\"c\nd";
        let r = csv_resume_point(data.as_bytes()).unwrap();
        assert_eq!((r.rows, r.last_id.as_deref()), (2, Some("x\ny")));
        assert_eq!(r.bytes as usize, data.len() - "3,\"c\nd".len());
        let header_only = csv_resume_point(b"id,label,score,probability\n").unwrap();
        assert_eq!((header_only.rows, header_only.bytes, header_only.label_columns), (0, 27, Some(1)));
        // torn just after a line break inside a quoted id: fewer fields than the header
        let torn = csv_resume_point(b"id,label,score,probability\n1,a,1,0.5\n\"x\n").unwrap();
        assert_eq!((torn.rows, torn.last_id.as_deref()), (1, Some("1")));
    }

    #[test]
    fn csv_rows_quote_what_needs_it() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_header(2), "id,label,score,probability,label_2,score_2,probability_2\n");
    }
}
