//! `eddy context ...`: the context strategies outside a pipeline. `disentangle` replays IRC
//! logs through a strategy and writes the reply links it inferred in the format of
//! `../shared/context-eval/score.py`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context as _};
use eddy_context::{irc, Registry};

/// Every strategy this binary knows.
pub(crate) fn registry() -> anyhow::Result<Registry> {
    let mut r = Registry::new();
    eddy_strategy_reply_chain::register(&mut r)?;
    eddy_strategy_recent_window::register(&mut r)?;
    eddy_strategy_heuristic::register(&mut r)?;
    Ok(r)
}

/// `eddy context ...`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ContextCmd {
    /// Replays every `<name>.ascii.txt` of INPUT_DIR through a strategy and writes the links
    /// it inferred to OUTPUT_DIR/<name>.annotation.txt ("A B -": B replies to A; "B B -": B
    /// starts a conversation).
    Disentangle {
        /// The strategy (reply-chain, recent-window, heuristic).
        #[arg(long, short)]
        strategy: String,
        /// Its parameters, as JSON (e.g. '{"own_gap_secs": 300}').
        #[arg(long, default_value = "null")]
        params: String,
        /// Directory of `.ascii.txt` logs.
        input_dir: PathBuf,
        /// Where the `.annotation.txt` files go (created).
        output_dir: PathBuf,
    },
}

pub(crate) fn run(cmd: ContextCmd) -> anyhow::Result<()> {
    let ContextCmd::Disentangle {
        strategy,
        params,
        input_dir,
        output_dir,
    } = cmd;
    let params: serde_json::Value =
        serde_json::from_str(&params).context("--params is not JSON")?;
    let registry = registry()?;
    registry.build(&strategy, params.clone())?;
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&input_dir)
        .with_context(|| format!("cannot read {}", input_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".ascii.txt"))
        .collect();
    logs.sort();
    if logs.is_empty() {
        bail!("no .ascii.txt files in {}", input_dir.display());
    }
    std::fs::create_dir_all(&output_dir)
        .with_context(|| format!("cannot create {}", output_dir.display()))?;
    let (mut messages, mut spent) = (0usize, std::time::Duration::ZERO);
    for path in &logs {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = file.trim_end_matches(".ascii.txt").to_owned();
        let mut s = registry.build(&strategy, params.clone())?;
        let started = Instant::now();
        let links = irc::disentangle(s.as_mut(), &lines, &name);
        spent += started.elapsed();
        messages += lines.len();
        let out: String = links
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{a} {i} -\n"))
            .collect();
        let target = output_dir.join(format!("{name}.annotation.txt"));
        std::fs::write(&target, out)
            .with_context(|| format!("cannot write {}", target.display()))?;
    }
    eprintln!(
        "eddy: {strategy}: {} logs, {messages} lines, {:.2} µs per line",
        logs.len(),
        spent.as_secs_f64() * 1e6 / messages.max(1) as f64
    );
    Ok(())
}
