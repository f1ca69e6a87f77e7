//! `trainer push` and `trainer pull`: a checkpoint or bundle folder to and from the Hugging Face
//! Hub, through `zsc_core::hub` (one set of settings for both directions: `HF_ENDPOINT`, `HF_HOME`,
//! `HF_HUB_CACHE`, `HF_TOKEN`, `HUGGING_FACE_HUB_TOKEN`, the cached token of `huggingface-cli login`).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use zsc_core::hub::upload::{push_token, HubClient};
use zsc_core::hub::HubOptions;

#[derive(clap::Args, Debug, Clone)]
pub struct PushArgs {
    /// Checkpoint or bundle folder to upload (every file under it, `.git/` excepted).
    #[arg(long)]
    pub run: PathBuf,
    /// Target repository, `USER/NAME` or `ORG/NAME`.
    #[arg(long)]
    pub repo_id: String,
    /// Create the repository public (default: private). An existing repo keeps its visibility.
    #[arg(long)]
    pub public: bool,
    /// Hub URL [default: $HF_ENDPOINT or https://huggingface.co].
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Branch to commit to.
    #[arg(long, default_value = "main")]
    pub revision: String,
    /// Commit message [default: "Upload <folder name> with zsc"].
    #[arg(long)]
    pub message: Option<String>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct PullArgs {
    /// Repository `USER/NAME` (or an existing local folder, printed as is).
    #[arg(long)]
    pub repo_id: String,
    #[arg(long, default_value = "main")]
    pub revision: String,
    /// Hugging Face hub cache [default: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub].
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Hub URL [default: $HF_ENDPOINT or https://huggingface.co].
    #[arg(long)]
    pub endpoint: Option<String>,
}

/// Hub settings from the environment, `endpoint` winning over `HF_ENDPOINT`; progress bars when
/// stderr is a terminal.
pub fn hub_options(endpoint: Option<&str>) -> HubOptions {
    let o = HubOptions::from_env().with_progress(std::io::stderr().is_terminal());
    match endpoint {
        Some(e) => o.with_endpoint(e),
        None => o,
    }
}

/// `trainer push`: the token of [`push_token`] (environment, the cached login token, `./.env`).
pub fn run_push(args: PushArgs) -> anyhow::Result<()> {
    let options = hub_options(args.endpoint.as_deref());
    let token = push_token(&options).context(
        "no Hugging Face token: set HF_TOKEN (or HUGGING_FACE_HUB_TOKEN), run `huggingface-cli login`, or put HF_TOKEN in ./.env",
    )?;
    let endpoint = options.endpoint.clone();
    let client = HubClient::new(&endpoint, Some(token))?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    let commit = rt
        .block_on(client.push_folder(&args.run, &args.repo_id, !args.public, &args.revision, args.message.as_deref()))
        .with_context(|| format!("push {} to {} ({endpoint})", args.run.display(), args.repo_id))?;
    println!("pushed {} to {}: {}", args.run.display(), args.repo_id, commit.commit_url);
    Ok(())
}

/// `trainer pull`: every file of the repo into the Hugging Face cache; prints the snapshot folder.
pub fn run_pull(args: PullArgs) -> anyhow::Result<()> {
    let mut options = hub_options(args.endpoint.as_deref());
    if let Some(dir) = &args.cache_dir {
        options = options.with_cache_dir(dir);
    }
    let dir = zsc_core::hub::pull(&args.repo_id, &args.revision, &options)
        .with_context(|| format!("pull {}@{}", args.repo_id, args.revision))?;
    println!("{}", dir.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_with_clap() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            push: PushArgs,
        }
        let cli = Cli::try_parse_from(["x", "--run", "runs/a/best", "--repo-id", "me/m", "--public"]).unwrap();
        assert!(cli.push.public);
        assert_eq!(cli.push.revision, "main");
        let cli = Cli::try_parse_from(["x", "--run", "r", "--repo-id", "me/m"]).unwrap();
        assert!(!cli.push.public, "private by default");
        assert_eq!(hub_options(Some("http://h:1/")).endpoint, "http://h:1");
    }
}
