//! The client commands (`topic`, `produce`, `consume`, `groups`): each is a few calls to a
//! running server's HTTP API. Tables for people by default, JSON with `--json`.
//!
//! Exit codes: 0 success, 1 the server refused or failed the request, 2 bad usage, 3 the
//! server could not be reached.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use eddy_http::client::{encode_component as encode, Client, Response};
use serde_json::{json, Value};

/// A request the server answered with an error.
#[derive(Debug)]
pub(crate) struct ApiFailure {
    status: u16,
    code: String,
    message: String,
}

impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} {})", self.message, self.status, self.code)
    }
}

impl std::error::Error for ApiFailure {}

/// The server could not be reached.
#[derive(Debug)]
pub(crate) struct Unreachable(String);

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (is `eddy serve` running there? see --server)",
            self.0
        )
    }
}

impl std::error::Error for Unreachable {}

/// Options every client command takes.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ClientOpts {
    /// The server's HTTP API.
    #[arg(
        long,
        env = "EDDY_SERVER",
        default_value = "127.0.0.1:8080",
        value_name = "HOST:PORT"
    )]
    server: String,
    /// The cluster on that server (default: its main cluster).
    #[arg(long, env = "EDDY_CLUSTER_NAME", value_name = "NAME")]
    cluster: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

struct Api {
    client: Client,
    opts: ClientOpts,
}

/// `a=b&c=d` with each value percent-encoded.
fn query(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl Api {
    fn new(opts: &ClientOpts) -> Api {
        Api {
            client: Client::new(opts.server.clone(), Duration::from_secs(120)),
            opts: opts.clone(),
        }
    }

    fn call(&self, method: &str, target: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let r = self
            .client
            .request(method, target, body)
            .map_err(|e| Unreachable(e.to_string()))?;
        check(&r)?;
        if r.body.is_empty() {
            return Ok(Value::Null);
        }
        Ok(r.json()?)
    }

    fn cluster_pairs(&self) -> Vec<(&'static str, String)> {
        self.opts
            .cluster
            .iter()
            .map(|c| ("cluster", c.clone()))
            .collect()
    }

    fn with_cluster(&self, path: &str) -> String {
        let q = query(&self.cluster_pairs());
        if q.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{q}")
        }
    }
}

fn check(r: &Response) -> anyhow::Result<()> {
    if (200..300).contains(&r.status) {
        return Ok(());
    }
    let (code, message) = match r.json() {
        Ok(v) => (
            v["error"]["code"].as_str().unwrap_or("error").to_owned(),
            v["error"]["message"]
                .as_str()
                .unwrap_or("no message")
                .to_owned(),
        ),
        Err(_) => (
            "error".to_owned(),
            String::from_utf8_lossy(&r.body).into_owned(),
        ),
    };
    Err(ApiFailure {
        status: r.status,
        code,
        message,
    }
    .into())
}

/// Columns padded to their widest cell.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                let w = widths.get(i).copied().unwrap_or(0);
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn ids(v: &Value) -> String {
    v.as_array()
        .map(|a| a.iter().map(text).collect::<Vec<_>>().join(","))
        .unwrap_or_default()
}

fn print_json(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

// ---- topic ----

/// `eddy topic ...`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum TopicCmd {
    /// Creates a topic.
    Create {
        /// The topic.
        name: String,
        /// Partitions (the cluster's default otherwise).
        #[arg(long, short)]
        partitions: Option<u32>,
        /// Replicas per partition (default 3, at most the number of brokers).
        #[arg(long, short)]
        replication_factor: Option<u32>,
        /// retention.ms (-1 keeps forever).
        #[arg(long, allow_negative_numbers = true)]
        retention_ms: Option<i64>,
        /// retention.bytes per partition (-1: no limit).
        #[arg(long, allow_negative_numbers = true)]
        retention_bytes: Option<i64>,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Lists the topics.
    List {
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Shows a topic's partitions, leaders and in-sync replicas.
    Describe {
        /// The topic.
        name: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Deletes a topic and its records.
    Delete {
        /// The topic.
        name: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
}

fn retention(v: &Value) -> String {
    match v.as_i64() {
        None => "forever".into(),
        Some(ms) if ms % 86_400_000 == 0 => format!("{}d", ms / 86_400_000),
        Some(ms) if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        Some(ms) => format!("{ms}ms"),
    }
}

pub(crate) fn topic(cmd: TopicCmd) -> anyhow::Result<()> {
    match cmd {
        TopicCmd::Create {
            name,
            partitions,
            replication_factor,
            retention_ms,
            retention_bytes,
            opts,
        } => {
            let api = Api::new(&opts);
            let mut body = json!({"name": name});
            let fields = [
                ("cluster", opts.cluster.clone().map(Value::from)),
                ("partitions", partitions.map(Value::from)),
                ("replication_factor", replication_factor.map(Value::from)),
                ("retention_ms", retention_ms.map(Value::from)),
                ("retention_bytes", retention_bytes.map(Value::from)),
            ];
            for (k, v) in fields {
                if let Some(v) = v {
                    body[k] = v;
                }
            }
            let t = api.call("POST", "/topics", Some(&body))?;
            if opts.json {
                return print_json(&t);
            }
            println!(
                "created topic {} ({} partitions, replication factor {})",
                text(&t["name"]),
                t["partition_count"],
                t["replication_factor"]
            );
        }
        TopicCmd::List { opts } => {
            let api = Api::new(&opts);
            let topics = api.call("GET", &api.with_cluster("/topics"), None)?;
            if opts.json {
                return print_json(&topics);
            }
            let rows: Vec<Vec<String>> = topics
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    vec![
                        text(&t["name"]),
                        text(&t["partition_count"]),
                        text(&t["replication_factor"]),
                        retention(&t["retention_ms"]),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(&["TOPIC", "PARTITIONS", "REPLICATION", "RETENTION"], &rows)
            );
        }
        TopicCmd::Describe { name, opts } => {
            let api = Api::new(&opts);
            let t = api.call(
                "GET",
                &api.with_cluster(&format!("/topics/{}", encode(&name))),
                None,
            )?;
            if opts.json {
                return print_json(&t);
            }
            println!(
                "topic {}  partitions {}  replication {}  min.insync.replicas {}  retention {}",
                text(&t["name"]),
                t["partition_count"],
                t["replication_factor"],
                t["min_insync_replicas"],
                retention(&t["retention_ms"])
            );
            let rows: Vec<Vec<String>> = t["partitions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    vec![
                        text(&p["partition"]),
                        text(&p["leader"]),
                        text(&p["leader_epoch"]),
                        ids(&p["replicas"]),
                        ids(&p["isr"]),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(&["PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR"], &rows)
            );
        }
        TopicCmd::Delete { name, opts } => {
            let api = Api::new(&opts);
            api.call(
                "DELETE",
                &api.with_cluster(&format!("/topics/{}", encode(&name))),
                None,
            )?;
            if opts.json {
                return print_json(&json!({"deleted": name}));
            }
            println!("deleted topic {name}");
        }
    }
    Ok(())
}

// ---- groups ----

/// `eddy groups ...`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum GroupsCmd {
    /// Lists the consumer groups.
    List {
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Shows a group's members, committed offsets and lag.
    Describe {
        /// The group.
        group: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
}

pub(crate) fn groups(cmd: GroupsCmd) -> anyhow::Result<()> {
    match cmd {
        GroupsCmd::List { opts } => {
            let api = Api::new(&opts);
            let groups = api.call("GET", &api.with_cluster("/groups"), None)?;
            if opts.json {
                return print_json(&groups);
            }
            let rows: Vec<Vec<String>> = groups
                .as_array()
                .into_iter()
                .flatten()
                .map(|g| vec![text(&g["group"]), text(&g["state"])])
                .collect();
            print!("{}", table(&["GROUP", "STATE"], &rows));
        }
        GroupsCmd::Describe { group, opts } => {
            let api = Api::new(&opts);
            let g = api.call(
                "GET",
                &api.with_cluster(&format!("/groups/{}", encode(&group))),
                None,
            )?;
            if opts.json {
                return print_json(&g);
            }
            println!(
                "group {}  state {}  generation {}  assignor {}",
                text(&g["group"]),
                text(&g["state"]),
                g["generation"],
                text(&g["protocol"])
            );
            let rows: Vec<Vec<String>> = g["partitions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    vec![
                        text(&p["topic"]),
                        text(&p["partition"]),
                        text(&p["committed"]),
                        text(&p["log_end"]),
                        text(&p["lag"]),
                        text(&p["member_id"]),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(
                    &[
                        "TOPIC",
                        "PARTITION",
                        "COMMITTED",
                        "LOG-END",
                        "LAG",
                        "MEMBER"
                    ],
                    &rows
                )
            );
        }
    }
    Ok(())
}

// ---- produce ----

/// How values (and keys) are read and printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ValueFormat {
    /// The bytes of the line, as they are.
    Raw,
    /// Each value is a JSON document.
    Json,
}

/// `eddy produce`.
#[derive(Debug, clap::Args)]
pub(crate) struct ProduceArgs {
    /// The topic.
    topic: String,
    /// Read the records from this file instead of stdin (one per line), with a progress bar.
    #[arg(long, short)]
    file: Option<PathBuf>,
    /// Each line is KEY<SEP>VALUE, split at the first SEP.
    #[arg(long, short = 'k', value_name = "SEP")]
    key_separator: Option<String>,
    /// Send every record to this partition (else the key decides, else round-robin).
    #[arg(long, short)]
    partition: Option<u32>,
    /// 0, 1 or all.
    #[arg(long, default_value = "all")]
    acks: String,
    /// How each line's value is read.
    #[arg(long, value_enum, default_value = "raw")]
    value_format: ValueFormat,
    /// Records per request.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    #[command(flatten)]
    opts: ClientOpts,
}

struct Progress {
    total: u64,
    done: u64,
    records: u64,
    started: Instant,
    last: Instant,
    enabled: bool,
}

impl Progress {
    fn new(total: u64, enabled: bool) -> Progress {
        let now = Instant::now();
        Progress {
            total,
            done: 0,
            records: 0,
            started: now,
            last: now,
            enabled,
        }
    }

    fn advance(&mut self, bytes: u64, records: u64, force: bool) {
        self.done += bytes;
        self.records += records;
        if !self.enabled || (!force && self.last.elapsed() < Duration::from_millis(200)) {
            return;
        }
        self.last = Instant::now();
        let frac = if self.total == 0 {
            1.0
        } else {
            (self.done as f64 / self.total as f64).min(1.0)
        };
        let width = 30;
        let filled = (frac * width as f64) as usize;
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        eprint!(
            "\r[{}{}] {:>3.0}%  {} records  {:.1} MB/s ",
            "#".repeat(filled),
            " ".repeat(width - filled),
            frac * 100.0,
            self.records,
            self.done as f64 / 1e6 / secs
        );
        let _ = std::io::stderr().flush();
    }

    fn finish(&mut self) {
        if self.enabled {
            self.advance(0, 0, true);
            eprintln!();
        }
    }
}

fn send_batch(
    api: &Api,
    args: &ProduceArgs,
    records: &mut Vec<Value>,
    per_partition: &mut BTreeMap<u64, u64>,
) -> anyhow::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let format = match args.value_format {
        ValueFormat::Raw => "base64",
        ValueFormat::Json => "json",
    };
    let mut body = json!({
        "topic": args.topic,
        "acks": args.acks,
        "format": format,
        "records": std::mem::take(records),
    });
    if let Some(c) = &api.opts.cluster {
        body["cluster"] = json!(c);
    }
    let out = api.call("POST", "/events", Some(&body))?;
    for w in out["records"].as_array().into_iter().flatten() {
        *per_partition
            .entry(w["partition"].as_u64().unwrap_or_default())
            .or_default() += 1;
    }
    Ok(())
}

pub(crate) fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.opts);
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let (reader, total, show): (Box<dyn Read>, u64, bool) = match &args.file {
        Some(path) => {
            let f = std::fs::File::open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            (Box::new(f), len, std::io::stderr().is_terminal())
        }
        None => (Box::new(std::io::stdin().lock()), 0, false),
    };
    let mut reader = BufReader::new(reader);
    let mut progress = Progress::new(total, show);
    let mut batch = Vec::with_capacity(args.batch);
    let mut batch_bytes = 0u64;
    let mut per_partition = BTreeMap::new();
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .context("cannot read the input")?;
        if n == 0 {
            break;
        }
        number += 1;
        batch_bytes += n as u64;
        let mut l = line.as_slice();
        if l.ends_with(b"\n") {
            l = &l[..l.len() - 1];
        }
        if l.ends_with(b"\r") {
            l = &l[..l.len() - 1];
        }
        let (key, value) = match &args.key_separator {
            Some(sep) => match find(l, sep.as_bytes()) {
                Some(i) => (Some(&l[..i]), &l[i + sep.len()..]),
                None => bail!("line {number} has no key separator {sep:?}"),
            },
            None => (None, l),
        };
        let mut record = json!({});
        match args.value_format {
            ValueFormat::Raw => {
                record["value"] = json!(BASE64.encode(value));
                if let Some(k) = key {
                    record["key"] = json!(BASE64.encode(k));
                }
            }
            ValueFormat::Json => {
                let v: Value = serde_json::from_slice(value)
                    .with_context(|| format!("line {number} is not JSON"))?;
                record["value"] = v;
                if let Some(k) = key {
                    let k = std::str::from_utf8(k)
                        .with_context(|| format!("line {number}: the key is not UTF-8"))?;
                    record["key"] = json!(k);
                }
            }
        }
        if let Some(p) = args.partition {
            record["partition"] = json!(p);
        }
        batch.push(record);
        if batch.len() >= args.batch {
            let sent = batch.len() as u64;
            send_batch(&api, &args, &mut batch, &mut per_partition)?;
            progress.advance(batch_bytes, sent, false);
            batch_bytes = 0;
        }
    }
    let sent = batch.len() as u64;
    send_batch(&api, &args, &mut batch, &mut per_partition)?;
    progress.advance(batch_bytes, sent, false);
    progress.finish();
    let total: u64 = per_partition.values().sum();
    if args.opts.json {
        let parts: BTreeMap<String, u64> = per_partition
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        return print_json(&json!({"topic": args.topic, "records": total, "partitions": parts}));
    }
    eprintln!(
        "eddy: {total} records to {} in {:.2} s",
        args.topic,
        progress.started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ---- consume ----

/// `eddy consume`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConsumeArgs {
    /// The topic.
    topic: String,
    /// Consume as a member of this group (committing what is printed); otherwise every
    /// partition (or --partition) is read directly.
    #[arg(long, short)]
    group: Option<String>,
    /// Without a group: read only this partition.
    #[arg(long, short)]
    partition: Option<u32>,
    /// Without a group: where to start, `beginning`, `end` or an offset.
    #[arg(long, short, default_value = "beginning")]
    offset: String,
    /// Keep waiting for new records (until Ctrl-C).
    #[arg(long, short = 'F')]
    follow: bool,
    /// Stop after this many records.
    #[arg(long)]
    max_records: Option<u64>,
    /// Print `key<TAB>value`.
    #[arg(long)]
    print_key: bool,
    /// In a group, with no record yet: give up after this long (ms).
    #[arg(long, default_value_t = 10_000)]
    idle_ms: u64,
    #[command(flatten)]
    opts: ClientOpts,
}

enum Start {
    Beginning,
    End,
    At(u64),
}

fn print_record(r: &Value, args: &ConsumeArgs, out: &mut impl Write) -> anyhow::Result<()> {
    if args.opts.json {
        // Values as JSON where they are JSON, as the API gives them.
        writeln!(out, "{r}")?;
        return Ok(());
    }
    let bytes = |v: &Value| -> anyhow::Result<Vec<u8>> {
        match v.as_str() {
            Some(s) => Ok(BASE64.decode(s).context("the server sent bad base64")?),
            None => Ok(Vec::new()),
        }
    };
    if args.print_key {
        match r["key"].as_str() {
            Some(_) => out.write_all(&bytes(&r["key"])?)?,
            None => out.write_all(b"-")?,
        }
        out.write_all(b"\t")?;
    }
    if r.get("value_base64").is_some() {
        out.write_all(&bytes(&r["value_base64"])?)?;
    }
    out.write_all(b"\n")?;
    Ok(())
}

pub(crate) fn consume(args: ConsumeArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.opts);
    let format = if args.opts.json { "json" } else { "base64" };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut printed = 0u64;
    let limit = args.max_records.unwrap_or(u64::MAX);
    if let Some(group) = &args.group {
        if args.partition.is_some() || args.offset != "beginning" {
            bail!("--partition and --offset read without a group; a group starts at its committed offsets");
        }
        let consumer = format!("cli-{}", std::process::id());
        let started = Instant::now();
        let mut pairs = vec![
            ("topic", args.topic.clone()),
            ("group", group.clone()),
            ("consumer", consumer.clone()),
            ("format", format.to_owned()),
            ("wait_ms", "1000".to_owned()),
        ];
        pairs.extend(api.cluster_pairs());
        let result = (|| -> anyhow::Result<()> {
            while printed < limit {
                let mut p = pairs.clone();
                p.push(("max", (limit - printed).min(1000).to_string()));
                let r = api.call("GET", &format!("/events?{}", query(&p)), None)?;
                let records = r["records"].as_array().cloned().unwrap_or_default();
                for rec in &records {
                    print_record(rec, &args, &mut out)?;
                    printed += 1;
                }
                out.flush()?;
                let idle = printed == 0 && started.elapsed() > Duration::from_millis(args.idle_ms);
                if records.is_empty() && !args.follow && (printed > 0 || idle) {
                    break;
                }
            }
            Ok(())
        })();
        // Leave the group now rather than when the server notices the idle consumer.
        let _ = api.call(
            "DELETE",
            &api.with_cluster(&format!(
                "/groups/{}/consumers/{}",
                encode(group),
                encode(&consumer)
            )),
            None,
        );
        return result;
    }

    let start = match args.offset.as_str() {
        "beginning" => Start::Beginning,
        "end" => Start::End,
        n => Start::At(
            n.parse()
                .with_context(|| format!("--offset {n:?} is not beginning, end or a number"))?,
        ),
    };
    let partitions: Vec<u32> = match args.partition {
        Some(p) => vec![p],
        None => {
            let t = api.call(
                "GET",
                &api.with_cluster(&format!("/topics/{}", encode(&args.topic))),
                None,
            )?;
            (0..t["partition_count"].as_u64().unwrap_or(0) as u32).collect()
        }
    };
    let read = |partition: u32, offset: Option<u64>, max: u64, wait: u64| {
        let mut p = vec![
            ("topic", args.topic.clone()),
            ("partition", partition.to_string()),
            ("format", format.to_owned()),
            ("max", max.clamp(1, 1000).to_string()),
            ("wait_ms", wait.to_string()),
        ];
        if let Some(o) = offset {
            p.push(("offset", o.to_string()));
        }
        p.extend(api.cluster_pairs());
        api.call("GET", &format!("/events?{}", query(&p)), None)
    };
    // Where each partition's next read starts.
    let mut next: BTreeMap<u32, Option<u64>> = BTreeMap::new();
    for &p in &partitions {
        let at = match start {
            Start::Beginning => None,
            Start::At(o) => Some(o),
            Start::End => read(p, None, 1, 0)?["high_watermark"].as_u64(),
        };
        next.insert(p, at);
    }
    loop {
        let mut caught_up = true;
        for &p in &partitions {
            if printed >= limit {
                return Ok(());
            }
            let wait = if args.follow && partitions.len() == 1 {
                1000
            } else {
                0
            };
            let r = read(p, next[&p], limit - printed, wait)?;
            let records = r["records"].as_array().cloned().unwrap_or_default();
            for rec in &records {
                print_record(rec, &args, &mut out)?;
                printed += 1;
            }
            out.flush()?;
            let n = r["next_offset"].as_u64();
            next.insert(p, n);
            if n < r["high_watermark"].as_u64() {
                caught_up = false;
            }
        }
        if caught_up {
            if !args.follow {
                return Ok(());
            }
            if partitions.len() > 1 {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_columns() {
        let t = table(
            &["A", "LONGER"],
            &[
                vec!["wide cell".into(), "x".into()],
                vec!["y".into(), "z".into()],
            ],
        );
        assert_eq!(t, "A          LONGER\nwide cell  x\ny          z\n");
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            query(&[("topic", "a b&c".into()), ("group", "g/1".into())]),
            "topic=a%20b%26c&group=g%2F1"
        );
        assert_eq!(find(b"k::v", b"::"), Some(1));
        assert_eq!(retention(&json!(604800000)), "7d");
        assert_eq!(retention(&Value::Null), "forever");
    }
}
