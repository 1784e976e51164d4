//! Context strategies: ingest rate and context-assembly latency with 1,000,000 messages in
//! history, and, when the corpus is there, each strategy's disentanglement scores.
//!
//! `cargo bench -p eddy-benches --bench context` (`-- --quick`: 100,000 messages).
//!
//! 1. Ingest: a synthetic group chat (8 rooms, 200 speakers, a third of the messages
//!    addressing someone, a third explicit replies) through each strategy; messages/s.
//! 2. `context_for` on 10,000 random messages of that history: p50, p99, max.
//! 3. Scores on `../shared/context-eval/dev` (or `$EDDY_CONTEXT_EVAL/dev`) with its
//!    `score.py`, next to the baselines of its README.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use eddy_context::{irc, Budget, ChatMessage, ContextStrategy, MessageKind, Registry};

fn registry() -> anyhow::Result<Registry> {
    let mut r = Registry::new();
    eddy_strategy_reply_chain::register(&mut r)?;
    eddy_strategy_recent_window::register(&mut r)?;
    eddy_strategy_heuristic::register(&mut r)?;
    Ok(r)
}

/// A deterministic pseudo-random sequence (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const WORDS: &[&str] = &[
    "install",
    "kernel",
    "driver",
    "wifi",
    "sound",
    "update",
    "package",
    "broken",
    "works",
    "thanks",
    "try",
    "reboot",
    "grub",
    "partition",
    "mount",
    "network",
    "screen",
    "resolution",
];

fn synthetic_chat(n: usize) -> Vec<ChatMessage> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut out: Vec<ChatMessage> = Vec::with_capacity(n);
    for i in 0..n {
        let room = rng.below(8);
        let who = format!("user{}", rng.below(200));
        let mut text = String::new();
        let kind = rng.below(3);
        if kind == 0 {
            text.push_str(&format!("user{}: ", rng.below(200)));
        }
        for _ in 0..(3 + rng.below(12)) {
            text.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
            text.push(' ');
        }
        let parent = (kind == 1 && i > 0)
            .then(|| (i - 1 - rng.below(50.min(i as u64)) as usize).to_string());
        out.push(ChatMessage {
            message_id: i.to_string(),
            content: text,
            context_id: format!("c{i}"),
            parent_message_id: parent,
            thread_id: format!("c{i}"),
            partition_hint: None,
            sender_id: who.clone(),
            sender_name: who,
            chat_id: format!("room{room}"),
            timestamp: 1_700_000_000_000 + i as i64 * 250,
            mentions: Vec::new(),
            kind: MessageKind::Message,
            emoji: None,
        });
    }
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn speed(name: &str, chat: &[ChatMessage], registry: &Registry) -> anyhow::Result<()> {
    let mut s: Box<dyn ContextStrategy> = registry.build(name, serde_json::Value::Null)?;
    let started = Instant::now();
    for m in chat {
        s.observe(m);
    }
    let ingest = started.elapsed();
    let mut rng = Rng(42);
    let budget = Budget::default();
    let mut times = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        let id = rng.below(chat.len() as u64).to_string();
        let t = Instant::now();
        let ctx = s.context_for(&id, &budget);
        times.push(t.elapsed());
        assert!(ctx.is_some());
    }
    times.sort();
    println!(
        "{name:<14} ingest {:>9.0} msg/s ({:.2} µs/msg)   context_for p50 {:>7.1} µs  p99 {:>7.1} µs  max {:>7.1} µs",
        chat.len() as f64 / ingest.as_secs_f64(),
        ingest.as_secs_f64() * 1e6 / chat.len() as f64,
        percentile(&times, 0.5).as_secs_f64() * 1e6,
        percentile(&times, 0.99).as_secs_f64() * 1e6,
        times.last().map_or(0.0, |d| d.as_secs_f64() * 1e6),
    );
    Ok(())
}

fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("EDDY_CONTEXT_EVAL")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/context-eval"));
    dir.join("score.py").exists().then_some(dir)
}

fn scores(name: &str, eval: &Path, registry: &Registry) -> anyhow::Result<()> {
    let out = tempfile::tempdir()?;
    let dev = eval.join("dev");
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&dev)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".ascii.txt"))
        .collect();
    logs.sort();
    for path in logs {
        let text = String::from_utf8_lossy(&std::fs::read(&path)?).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        let file = path
            .file_name()
            .context("no file name")?
            .to_string_lossy()
            .into_owned();
        let base = file.trim_end_matches(".ascii.txt");
        let mut s = registry.build(name, serde_json::Value::Null)?;
        let links = irc::disentangle(s.as_mut(), &lines, base);
        let body: String = links
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{a} {i} -\n"))
            .collect();
        std::fs::write(out.path().join(format!("{base}.annotation.txt")), body)?;
    }
    let result = Command::new("python3")
        .arg(eval.join("score.py"))
        .arg(&dev)
        .arg(out.path())
        .output()
        .context("python3 is needed to run score.py")?;
    let text = String::from_utf8_lossy(&result.stdout);
    let lines: Vec<&str> = text.lines().skip(1).collect();
    println!("{name:<14} {}", lines.join("   "));
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 100_000 } else { 1_000_000 };
    let registry = registry()?;
    println!("context strategies, {n} synthetic messages in history (8 rooms, 200 speakers):");
    let chat = synthetic_chat(n);
    for name in registry.names() {
        speed(&name, &chat, &registry)?;
    }
    drop(chat);
    match corpus() {
        Some(eval) => {
            println!("\ndisentanglement scores on {} (baseline 'previous message': F 30.2, VI 66.2, 1-1 23.9):", eval.join("dev").display());
            for name in registry.names() {
                scores(&name, &eval, &registry)?;
            }
        }
        None => {
            println!("\n(no ../shared/context-eval here, nor $EDDY_CONTEXT_EVAL: scores skipped)")
        }
    }
    Ok(())
}
