//! [`Label`]: a candidate label's name plus, optionally, what it means: a description and a few
//! example texts. [`read_labels_file`] reads them from YAML or JSON; [`ViewAggregation`] says how a
//! text's scores against a label's views become the label's score.

use std::collections::HashSet;
use std::path::Path;

use crate::error::{Error, Result};

/// Most example texts one label may carry: each is encoded and scored like a label, so thousands
/// would make every call slow; a task with that many examples wants training, not views.
pub const MAX_EXAMPLES_PER_LABEL: usize = 100;

/// A candidate label. Plain strings convert into one (`"refund".into()`), so every API that takes
/// labels takes names too.
///
/// ```
/// use zsc::Label;
/// let refund = Label::new("refund")
///     .with_description("the customer wants their money back")
///     .with_examples(["I want my money back", "please reverse the charge"]);
/// assert_eq!(refund.views(), 4); // the name, the description, two examples
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Label {
    /// The name returned in predictions (encoded through the bundle's label template).
    pub name: String,
    /// What the label means, in a sentence (encoded as a label, without the template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Texts that belong to the label (encoded as texts, with the text prompt).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
}

impl Label {
    /// A label with a name only.
    pub fn new(name: impl Into<String>) -> Self {
        Label { name: name.into(), description: None, examples: Vec::new() }
    }

    /// The same label with a description.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// The same label with these example texts added.
    pub fn with_examples<S: Into<String>>(mut self, examples: impl IntoIterator<Item = S>) -> Self {
        self.examples.extend(examples.into_iter().map(Into::into));
        self
    }

    /// How many views it is scored through: the name, the description if any, each example.
    pub fn views(&self) -> usize {
        1 + usize::from(self.description.is_some()) + self.examples.len()
    }

    /// Errors unless the name, the description and every example are non-blank and the examples
    /// are at most [`MAX_EXAMPLES_PER_LABEL`]. `index` is the label's position, for the message.
    pub(crate) fn validate(&self, index: usize) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(Error::EmptyLabel { index });
        }
        let bad = |message: String| Err(Error::InvalidLabel { label: self.name.clone(), message });
        if self.description.as_deref().is_some_and(|d| d.trim().is_empty()) {
            return bad("the description is empty".into());
        }
        if let Some(i) = self.examples.iter().position(|e| e.trim().is_empty()) {
            return bad(format!("example {i} is empty"));
        }
        if self.examples.len() > MAX_EXAMPLES_PER_LABEL {
            return bad(format!(
                "{} examples; at most {MAX_EXAMPLES_PER_LABEL} per label (a few are what views are for; train for more)",
                self.examples.len()
            ));
        }
        Ok(())
    }
}

impl From<&str> for Label {
    fn from(name: &str) -> Self {
        Label::new(name)
    }
}

impl From<String> for Label {
    fn from(name: String) -> Self {
        Label::new(name)
    }
}

impl From<&String> for Label {
    fn from(name: &String) -> Self {
        Label::new(name.as_str())
    }
}

impl From<&Label> for Label {
    fn from(label: &Label) -> Self {
        label.clone()
    }
}

/// How a text's scores against a label's views (its name, description and examples) become the
/// label's score. A label with only a name scores the same under all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ViewAggregation {
    /// The mean of the view scores.
    Mean,
    /// The best view's score (a nearest-neighbour vote among the examples).
    Max,
    /// BiEncoder and PolyEncoder: one vector per label, the mean of its views' unit vectors scaled
    /// to their mean length (a class prototype that includes the name), scored as a single label.
    #[default]
    Prototype,
}

impl std::str::FromStr for ViewAggregation {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "mean" => Ok(ViewAggregation::Mean),
            "max" => Ok(ViewAggregation::Max),
            "prototype" => Ok(ViewAggregation::Prototype),
            other => Err(format!("unknown view aggregation `{other}`, expected mean, max or prototype")),
        }
    }
}

/// One entry of a labels file: a bare name or a [`Label`] object.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Entry {
    Name(String),
    Label(Label),
}

/// Read a labels file: a YAML (or JSON, which YAML reads too) list whose entries are names or
/// objects `{name, description?, examples?}`; a file with another extension than `.yaml`, `.yml`
/// or `.json` is one name per line. Missing names, duplicate names, empty descriptions or examples
/// and too many examples are errors naming the file and the label.
pub fn read_labels_file(path: &Path) -> Result<Vec<Label>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::LabelsFile { path: path.to_path_buf(), message: e.to_string() })?;
    let structured = matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json"));
    let labels = if structured { parse_structured(&text, path)? } else { parse_lines(&text) };
    check_labels(&labels).map_err(|e| Error::LabelsFile { path: path.to_path_buf(), message: e.to_string() })?;
    Ok(labels)
}

fn parse_lines(text: &str) -> Vec<Label> {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(Label::from).collect()
}

fn parse_structured(text: &str, path: &Path) -> Result<Vec<Label>> {
    let bad = |message: String| Error::LabelsFile { path: path.to_path_buf(), message };
    let entries: Vec<serde_yaml::Value> =
        serde_yaml::from_str(text).map_err(|e| bad(format!("expected a list of labels: {e}")))?;
    entries
        .into_iter()
        .enumerate()
        .map(|(i, v)| match serde_yaml::from_value::<Entry>(v.clone()) {
            Ok(Entry::Name(n)) => Ok(Label::new(n)),
            Ok(Entry::Label(l)) => Ok(l),
            Err(_) => Err(bad(entry_error(i, &v))),
        })
        .collect()
}

/// Why entry `i` is not a label (untagged enums only say "did not match").
fn entry_error(i: usize, v: &serde_yaml::Value) -> String {
    let Some(map) = v.as_mapping() else {
        return format!("entry {i} is neither a name nor a {{name, description, examples}} object");
    };
    if !map.contains_key("name") {
        return format!("entry {i} has no `name`");
    }
    match serde_yaml::from_value::<Label>(v.clone()) {
        Err(e) => format!("entry {i}: {e}"),
        Ok(_) => format!("entry {i} is not a label"),
    }
}

/// Every label valid, and no name twice.
pub(crate) fn check_labels(labels: &[Label]) -> Result<()> {
    if labels.is_empty() {
        return Err(Error::NoLabels);
    }
    let mut seen = HashSet::new();
    for (i, l) in labels.iter().enumerate() {
        l.validate(i)?;
        if !seen.insert(l.name.as_str()) {
            return Err(Error::InvalidLabel { label: l.name.clone(), message: "appears twice".into() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn yaml_json_and_plain_files() {
        let d = tempfile::tempdir().unwrap();
        let yaml = "- name: refund\n  description: money back\n  examples: [give me my money back, reverse it]\n- alarm\n";
        let labels = read_labels_file(&write(d.path(), "l.yaml", yaml)).unwrap();
        assert_eq!(
            labels[0],
            Label::new("refund").with_description("money back").with_examples(["give me my money back", "reverse it"])
        );
        assert_eq!(labels[1], Label::new("alarm"));
        let json = r#"[{"name": "refund", "examples": ["x"]}, "alarm"]"#;
        assert_eq!(read_labels_file(&write(d.path(), "l.json", json)).unwrap()[0].examples, ["x"]);
        let lines = read_labels_file(&write(d.path(), "l.txt", "refund\n\n alarm \n")).unwrap();
        assert_eq!(lines, [Label::new("refund"), Label::new("alarm")]);
    }

    #[test]
    fn bad_files_say_what_and_where() {
        let d = tempfile::tempdir().unwrap();
        let err = |name: &str, text: &str| read_labels_file(&write(d.path(), name, text)).unwrap_err().to_string();
        let e = err("a.yaml", "- description: no name\n");
        assert!(e.contains("a.yaml") && e.contains("entry 0 has no `name`"), "{e}");
        let e = err("b.yaml", "- refund\n- name: refund\n");
        assert!(e.contains("b.yaml") && e.contains("refund") && e.contains("twice"), "{e}");
        let e = err("c.yaml", "- name: refund\n  examples: [ok, '  ']\n");
        assert!(e.contains("example 1 is empty"), "{e}");
        let many: Vec<String> = (0..=MAX_EXAMPLES_PER_LABEL).map(|i| format!("text {i}")).collect();
        let e = err("d.json", &serde_json::json!([{"name": "x", "examples": many}]).to_string());
        assert!(e.contains("101 examples") && e.contains("at most 100"), "{e}");
        let e = err("e.yaml", "- name: x\n  exampels: [a]\n");
        assert!(e.contains("exampels"), "an unknown key is named: {e}");
        let e = err("f.yaml", "name: x\n");
        assert!(e.contains("list of labels"), "{e}");
        assert!(err("g.yaml", "[]\n").contains("no candidate labels"));
    }

    #[test]
    fn aggregation_names() {
        assert_eq!("max".parse::<ViewAggregation>().unwrap(), ViewAggregation::Max);
        assert!("best".parse::<ViewAggregation>().unwrap_err().contains("mean, max or prototype"));
    }
}
