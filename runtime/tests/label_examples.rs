//! Labels that say what they mean, on the real all-MiniLM-L6-v2 (untouched, exported as a
//! BiEncoder and as its untrained ColBERT): with meaningless names ("class A", ...) the bare names
//! cannot classify a fixed set of texts, and five examples per label can.

use std::path::PathBuf;

use zsc::{Classifier, ClassifierOptions, Label, ViewAggregation};
use zsc_core::ModelType;
use zsc_testkit::fixtures::base_model_dir;

const CLASSES: [(&str, [&str; 5]); 3] = [
    (
        "class A",
        [
            "how long do i bake banana bread",
            "what spices go into a curry",
            "how do i boil an egg",
            "a recipe for pancakes please",
            "can i use oil instead of butter in cookies",
        ],
    ),
    (
        "class B",
        [
            "transfer 100 dollars to my savings",
            "what is my checking account balance",
            "my credit card was declined",
            "how do i open a bank account",
            "wire money to my landlord",
        ],
    ),
    (
        "class C",
        [
            "will it rain tomorrow",
            "what is the temperature outside",
            "is there a storm warning tonight",
            "do i need an umbrella today",
            "how windy is it this afternoon",
        ],
    ),
];

/// Texts of the three classes (0, 1, 2), none of them an example.
const TEXTS: [(&str, usize); 9] = [
    ("preheat the oven for the lasagna", 0),
    ("what is a good marinade for chicken", 0),
    ("how much sugar goes in lemonade", 0),
    ("pay my electricity bill from checking", 1),
    ("how much interest does my savings account earn", 1),
    ("report a stolen debit card", 1),
    ("is it going to snow this weekend", 2),
    ("what is the forecast for saturday", 2),
    ("how hot will it be tomorrow", 2),
];

fn bundle(model_type: ModelType) -> PathBuf {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("runtime-tests").join(format!("minilm-views-{model_type}"));
    let options = zsc_export::ExportOptions::default().with_model_type(model_type);
    zsc_export::export_bundle(&base_model_dir(), &out, &options).unwrap();
    out
}

fn correct(clf: &Classifier, labels: &[Label]) -> usize {
    let texts: Vec<&str> = TEXTS.iter().map(|t| t.0).collect();
    let ranked = clf.classify(&texts, labels, 1).unwrap();
    ranked.iter().zip(TEXTS).filter(|(r, (_, gold))| r[0].label == CLASSES[*gold].0).count()
}

#[test]
fn meaningless_names_with_five_examples_classify_where_bare_names_cannot() {
    let bare: Vec<Label> = CLASSES.iter().map(|(name, _)| Label::new(*name)).collect();
    let with_examples: Vec<Label> = CLASSES.iter().map(|(name, ex)| Label::new(*name).with_examples(*ex)).collect();
    for model_type in [ModelType::BiEncoder, ModelType::Colbert] {
        let dir = bundle(model_type);
        for aggregation in [ViewAggregation::Prototype, ViewAggregation::Mean, ViewAggregation::Max] {
            let clf = Classifier::from_dir(&dir, ClassifierOptions::default().with_view_aggregation(aggregation)).unwrap();
            let (none, five) = (correct(&clf, &bare), correct(&clf, &with_examples));
            println!("{model_type} {aggregation:?}: bare names {none}/9, five examples {five}/9");
            assert!(none <= 4, "{model_type}: the bare names should not carry the meaning ({none}/9)");
            assert!(five >= 8, "{model_type} {aggregation:?}: examples should carry it ({five}/9)");
        }
    }
}
