//! [`Classifier::from_pretrained`]: a bundle named by a local folder or a Hugging Face Hub id
//! (`org/name[@revision]`), fetched with `hf-hub` into the standard Hugging Face cache
//! (`zsc_core::hub`: `HF_ENDPOINT`, `HF_HOME` / `HF_HUB_CACHE`, `HF_TOKEN`, `HF_HUB_OFFLINE`).

use std::path::PathBuf;

use zsc_core::hub::{HubOptions, Wanted};

use crate::error::{Error, Result};
use crate::{Classifier, ClassifierOptions};

impl Classifier {
    /// Load `model`: an existing bundle folder, or a Hub repo id whose `manifest.json` and the
    /// files it names are fetched first (only what is missing from the cache; a warm cache works
    /// offline). Hub settings come from the environment ([`HubOptions::from_env`]).
    pub fn from_pretrained(model: &str, options: ClassifierOptions) -> Result<Self> {
        Self::from_pretrained_with(model, options, &HubOptions::from_env())
    }

    /// Like [`Classifier::from_pretrained`] with explicit Hub settings.
    pub fn from_pretrained_with(model: &str, options: ClassifierOptions, hub: &HubOptions) -> Result<Self> {
        let dir = resolve_bundle(model, hub)?;
        Self::from_dir(dir, options)
    }
}

/// The local bundle folder `model` names (fetching it from the Hub if it is a repo id).
fn resolve_bundle(model: &str, hub: &HubOptions) -> Result<PathBuf> {
    zsc_core::hub::resolve(model, Wanted::Bundle, hub).map_err(Error::Hub)
}
