//! The `eddy` command. `eddy serve` runs an Eddy cluster (3 brokers by default, data in
//! `./eddy-data`) with a Kafka listener per broker (127.0.0.1:9092, 9093, 9094) and the HTTP
//! API with `/metrics` (127.0.0.1:8080), until Ctrl-C or SIGTERM. `eddy topic`, `produce`,
//! `consume` and `groups` are clients of a running server's HTTP API.
//!
//! # Layout
//! - `serve`: settings (flags, `EDDY_*` variables, a TOML file, defaults) and the server.
//! - `cli`: the client commands, their tables and exit codes.
//! - `context`: `eddy context disentangle`, strategies replayed over IRC logs.
//! - `bench`: `eddy bench produce|consume|e2e`, a load generator over the Kafka protocol.
//! - `memory`: hands the allocator's free memory back to the system, once a minute.

mod bench;
mod cli;
mod context;
mod memory;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A hostile Kafka frame's array count must not abort the process (see `LazyHugeAlloc`).
#[global_allocator]
static ALLOC: eddy_kafka::LazyHugeAlloc = eddy_kafka::LazyHugeAlloc;

/// Eddy: a streaming log for conversational data, with Kafka's wire protocol and an HTTP API.
#[derive(Debug, Parser)]
#[command(
    name = "eddy",
    version,
    after_help = "\
Exit codes: 0 success, 1 the server refused or failed the request, 2 bad usage,
3 the server could not be reached. Logs go to stderr; EDDY_LOG sets their level."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs an Eddy cluster, its Kafka listeners, its context consumer and its HTTP API
    /// until Ctrl-C.
    Serve(Box<serve::ServeArgs>),
    /// Creates, lists, describes and deletes topics.
    Topic {
        #[command(subcommand)]
        command: cli::TopicCmd,
    },
    /// Publishes records: one per line, from stdin or a file.
    Produce(cli::ProduceArgs),
    /// Prints records: from the beginning, as a group member, or following new ones.
    Consume(cli::ConsumeArgs),
    /// Lists consumer groups and shows their members and lag.
    Groups {
        #[command(subcommand)]
        command: cli::GroupsCmd,
    },
    /// Context strategies outside a pipeline (scoring them on IRC logs).
    Context {
        #[command(subcommand)]
        command: context::ContextCmd,
    },
    /// Load over the Kafka protocol (Eddy, Kafka or Redpanda): produce, consume or
    /// end-to-end, with throughput and latency percentiles.
    Bench(bench::BenchArgs),
}

fn init_logs(default: tracing::Level) -> anyhow::Result<()> {
    let level = match std::env::var("EDDY_LOG") {
        Ok(v) => v
            .parse()
            .map_err(|e| anyhow::anyhow!("EDDY_LOG={v}: {e}"))?,
        Err(_) => default,
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            init_logs(tracing::Level::INFO)?;
            serve::run(args.resolve()?)
        }
        Command::Topic { command } => cli::topic(command),
        Command::Produce(args) => cli::produce(args),
        Command::Consume(args) => cli::consume(args),
        Command::Groups { command } => cli::groups(command),
        Command::Context { command } => context::run(command),
        Command::Bench(args) => bench::run(args),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eddy: {e:#}");
            if e.downcast_ref::<cli::Unreachable>().is_some() {
                ExitCode::from(3)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
