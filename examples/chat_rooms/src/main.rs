//! Chat rooms on Eddy: a topic per room (`chatroom_<id>`), a consumer group per user
//! (`user_<id>`) so that every user receives every message of the rooms they joined, and read
//! receipts from the groups' committed offsets: who has read which message, and a "read by
//! everyone" notification to the sender. Users join and leave rooms (membership is a topic,
//! `chat_membership`, read back at start); notifications go to `chat_notifications`. Halfway
//! through, every client is dropped and made anew, as after a restart: each user's "last
//! read" position comes back from the committed offsets.
//!
//! Embedded (an in-process cluster, the default) or `--bootstrap host:port` (any
//! Kafka-protocol cluster), through the same client trait (`eddy_pipeline::StreamClient`).
//! `--run NAME` names the rooms of a run (`general-NAME`...), so that a second process with
//! the same name against the same cluster finds where everyone left off.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use clap::Parser;
use eddy_broker::{ClusterConfig, EmbeddedCluster};
use eddy_context::{room_topic, ChatMessage, MessageKind};
use eddy_pipeline::{
    read_to_end, EmbeddedClient, KafkaClient, OutRecord, PipelineError, StreamClient,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

const MEMBERSHIP: &str = "chat_membership";
const NOTIFICATIONS: &str = "chat_notifications";
const TIMEOUT: Duration = Duration::from_secs(10);

/// Chat rooms with read receipts.
#[derive(Debug, Parser)]
struct Args {
    /// A Kafka-protocol cluster (host:port); without it, an in-process cluster.
    #[arg(long)]
    bootstrap: Option<String>,
    /// Names this run's rooms; the same name again continues where it left off
    /// [default: the time].
    #[arg(long)]
    run: Option<String>,
    /// Ends with a one-line JSON summary.
    #[arg(long)]
    json: bool,
    /// Plays the short script (the test suite's); without it, a longer one.
    #[arg(long)]
    short: bool,
}

/// One step of the script.
#[derive(Debug, Clone)]
enum Step {
    Join(&'static str, &'static str),
    Leave(&'static str, &'static str),
    Say(&'static str, &'static str, &'static str),
    Read(&'static str),
    Restart,
}

fn script(short: bool) -> Vec<Step> {
    use Step::*;
    let mut s = vec![
        Join("ann", "general"),
        Join("bob", "general"),
        Join("cid", "general"),
        Join("bob", "random"),
        Join("cid", "random"),
        Say("ann", "general", "hello everyone"),
        Say("bob", "random", "anyone for coffee?"),
        Read("bob"),
        Read("cid"),
        Leave("cid", "random"),
        Say("bob", "random", "coffee in 5, second floor"),
        Join("ann", "random"),
        Read("ann"),
        Restart,
        Say("cid", "general", "lunch is on me today"),
        Read("ann"),
        Read("bob"),
        Read("cid"),
    ];
    if !short {
        s.extend([
            Join("dan", "general"),
            Say("dan", "general", "hi, I just joined"),
            Read("dan"),
            Read("ann"),
            Read("bob"),
            Read("cid"),
        ]);
    }
    s
}

#[derive(Debug, Serialize, Deserialize)]
struct Membership {
    room: String,
    user: String,
    member: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Notification {
    message_id: String,
    room: String,
    sender: String,
    text: String,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let run = args.run.clone().unwrap_or_else(|| now_ms().to_string());
    let system = actix_rt::System::new();
    match &args.bootstrap {
        None => {
            let dir = tempfile::tempdir().context("cannot make a temporary directory")?;
            let eddy = EmbeddedCluster::open(ClusterConfig::new("chat-rooms", dir.path()))?;
            let cluster = eddy.cluster();
            let result = system.block_on(play(
                |group| {
                    let cluster = cluster.clone();
                    async move { EmbeddedClient::connect(&cluster, &group, TIMEOUT).await }
                },
                &run,
                &args,
            ));
            eddy.shutdown();
            result
        }
        Some(bootstrap) => system.block_on(play(
            |group| {
                let bootstrap = bootstrap.clone();
                async move { KafkaClient::connect(&bootstrap, &group, TIMEOUT) }
            },
            &run,
            &args,
        )),
    }
}

/// What the run saw, for the summary.
#[derive(Debug, Default)]
struct Outcome {
    /// Per user, the texts delivered to them, in order.
    delivered: BTreeMap<String, Vec<String>>,
    /// Texts whose "read by everyone" notification was sent, in order.
    notified: Vec<String>,
    /// Per user, per room, the last-read offset before and after the restart.
    last_read_before: BTreeMap<String, BTreeMap<String, u64>>,
    last_read_after: BTreeMap<String, BTreeMap<String, u64>>,
}

/// The app's state: a client per user (its group), and what the topics say.
struct App<C, F> {
    connect: F,
    system: C,
    users: BTreeMap<String, C>,
    members: BTreeMap<String, BTreeSet<String>>,
    notified: BTreeSet<String>,
    run: String,
    seq: u64,
}

impl<C, F, Fut> App<C, F>
where
    C: StreamClient,
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<C, PipelineError>>,
{
    fn topic(&self, room: &str) -> String {
        room_topic(&format!("{room}-{}", self.run))
    }

    /// Reads the membership and the notifications sent so far back from their topics.
    async fn load(&mut self) -> anyhow::Result<()> {
        self.members.clear();
        self.notified.clear();
        let parts = [((MEMBERSHIP.to_owned(), 0), 0)];
        for r in read_to_end(&mut self.system, &parts).await? {
            let Some(v) = r.value else { continue };
            let m: Membership = serde_json::from_slice(&v)?;
            // Only this run's rooms.
            let Some(room) = m.room.strip_suffix(&format!("-{}", self.run)) else {
                continue;
            };
            let set = self.members.entry(room.to_owned()).or_default();
            if m.member {
                set.insert(m.user);
            } else {
                set.remove(&m.user);
            }
        }
        let parts = [((NOTIFICATIONS.to_owned(), 0), 0)];
        for r in read_to_end(&mut self.system, &parts).await? {
            let Some(v) = r.value else { continue };
            let n: Notification = serde_json::from_slice(&v)?;
            self.notified.insert(n.message_id);
        }
        Ok(())
    }

    async fn send(&mut self, topic: &str, key: &str, value: Vec<u8>) -> anyhow::Result<()> {
        let sent = self
            .system
            .send_all(vec![OutRecord {
                topic: topic.to_owned(),
                partition: Some(0),
                key: Some(Bytes::from(key.to_owned())),
                value: Bytes::from(value),
                timestamp: None,
                headers: Vec::new(),
            }])
            .await;
        for r in sent {
            r?;
        }
        Ok(())
    }

    async fn user(&mut self, user: &str) -> anyhow::Result<&mut C> {
        if !self.users.contains_key(user) {
            let c = (self.connect)(format!("user_{user}")).await?;
            self.users.insert(user.to_owned(), c);
        }
        self.users.get_mut(user).context("a user's client vanished")
    }

    async fn membership(&mut self, user: &str, room: &str, member: bool) -> anyhow::Result<()> {
        let topic = self.topic(room);
        self.system.ensure_topic(&topic, 1).await?;
        let key = format!("{room}-{}/{user}", self.run);
        let value = serde_json::to_vec(&Membership {
            room: format!("{room}-{}", self.run),
            user: user.to_owned(),
            member,
        })?;
        self.send(MEMBERSHIP, &key, value).await?;
        let set = self.members.entry(room.to_owned()).or_default();
        if member {
            set.insert(user.to_owned());
            println!("{user} joined #{room}");
        } else {
            set.remove(user);
            println!("{user} left #{room}");
        }
        Ok(())
    }

    async fn say(&mut self, user: &str, room: &str, text: &str) -> anyhow::Result<()> {
        self.seq += 1;
        let id = format!("{}-{}-{}", self.run, now_ms(), self.seq);
        let m = ChatMessage {
            message_id: id.clone(),
            content: text.to_owned(),
            context_id: format!("ctx-{id}"),
            parent_message_id: None,
            thread_id: format!("ctx-{id}"),
            partition_hint: Some(0),
            sender_id: user.to_owned(),
            sender_name: user.to_owned(),
            chat_id: room.to_owned(),
            timestamp: now_ms(),
            mentions: vec![],
            kind: MessageKind::Message,
            emoji: None,
        };
        let topic = self.topic(room);
        self.send(&topic, &m.context_id, m.to_json()?).await?;
        println!("{user} in #{room}: {text}");
        Ok(())
    }

    /// The user opens the app: every new message of their rooms, from their group's
    /// committed offsets, then a commit (the read receipt).
    async fn read(&mut self, user: &str, out: &mut Outcome) -> anyhow::Result<()> {
        let rooms: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.contains(user))
            .map(|(r, _)| r.clone())
            .collect();
        let tps: Vec<(String, u32)> = rooms.iter().map(|r| (self.topic(r), 0)).collect();
        let client = self.user(user).await?;
        let committed = client.committed(&tps).await?;
        let from: Vec<((String, u32), u64)> = tps
            .iter()
            .cloned()
            .zip(committed.iter().map(|c| c.unwrap_or(0)))
            .collect();
        let records = read_to_end(client, &from).await?;
        let mut next: BTreeMap<(String, u32), u64> = from.iter().cloned().collect();
        for r in &records {
            next.insert((r.topic.clone(), r.partition), r.offset + 1);
            let Some(v) = &r.value else { continue };
            let m = ChatMessage::decode(v)?;
            println!(
                "  [{user}'s screen] #{}: {}: {}",
                m.chat_id, m.sender_id, m.content
            );
            out.delivered
                .entry(user.to_owned())
                .or_default()
                .push(m.content);
        }
        if records.is_empty() {
            println!("  [{user}'s screen] nothing new");
        }
        let commit: Vec<((String, u32), u64)> = next.into_iter().collect();
        if !commit.is_empty() {
            client.commit(&commit).await?;
        }
        self.receipts(out).await
    }

    /// Who has read what; a notification to the sender once every other member has.
    async fn receipts(&mut self, out: &mut Outcome) -> anyhow::Result<()> {
        let rooms: Vec<(String, BTreeSet<String>)> = self
            .members
            .iter()
            .map(|(r, m)| (r.clone(), m.clone()))
            .collect();
        for (room, members) in rooms {
            let tp = (self.topic(&room), 0);
            let mut read_up_to = BTreeMap::new();
            for member in &members {
                let c = self.user(member).await?;
                let got = c.committed(std::slice::from_ref(&tp)).await?;
                read_up_to.insert(member.clone(), got.first().copied().flatten().unwrap_or(0));
            }
            let records = read_to_end(&mut self.system, &[(tp.clone(), 0)]).await?;
            for r in records {
                let Some(v) = r.value else { continue };
                let m = ChatMessage::decode(&v)?;
                let others: Vec<&String> = members.iter().filter(|u| **u != m.sender_id).collect();
                if others.is_empty() || self.notified.contains(&m.message_id) {
                    continue;
                }
                if others
                    .iter()
                    .all(|u| read_up_to.get(*u).is_some_and(|o| *o > r.offset))
                {
                    let n = Notification {
                        message_id: m.message_id.clone(),
                        room: room.clone(),
                        sender: m.sender_id.clone(),
                        text: m.content.clone(),
                    };
                    self.send(NOTIFICATIONS, &m.sender_id, serde_json::to_vec(&n)?)
                        .await?;
                    self.notified.insert(m.message_id);
                    println!(
                        "  ✓✓ to {}: \"{}\" in #{room} was read by everyone ({})",
                        m.sender_id,
                        m.content,
                        others
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    out.notified.push(m.content);
                }
            }
        }
        Ok(())
    }

    /// Every user's last-read offset in every room they are in.
    async fn last_read(&mut self) -> anyhow::Result<BTreeMap<String, BTreeMap<String, u64>>> {
        let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        let pairs: Vec<(String, String)> = self
            .members
            .iter()
            .flat_map(|(r, m)| m.iter().map(move |u| (u.clone(), r.clone())))
            .collect();
        for (user, room) in pairs {
            let tp = (self.topic(&room), 0);
            let c = self.user(&user).await?;
            let got = c.committed(&[tp]).await?;
            if let Some(o) = got.first().copied().flatten() {
                out.entry(user).or_default().insert(room, o);
            }
        }
        Ok(out)
    }
}

async fn play<C, F, Fut>(connect: F, run: &str, args: &Args) -> anyhow::Result<()>
where
    C: StreamClient,
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<C, PipelineError>>,
{
    let mut system = connect("chat-rooms-app".into()).await?;
    system.ensure_topic(MEMBERSHIP, 1).await?;
    system.ensure_topic(NOTIFICATIONS, 1).await?;
    let mut app = App {
        connect,
        system,
        users: BTreeMap::new(),
        members: BTreeMap::new(),
        notified: BTreeSet::new(),
        run: run.to_owned(),
        seq: 0,
    };
    app.load().await?;
    let mut out = Outcome::default();
    for step in script(args.short) {
        match step {
            Step::Join(u, r) => app.membership(u, r, true).await?,
            Step::Leave(u, r) => app.membership(u, r, false).await?,
            Step::Say(u, r, t) => {
                app.say(u, r, t).await?;
                app.receipts(&mut out).await?;
            }
            Step::Read(u) => app.read(u, &mut out).await?,
            Step::Restart => {
                out.last_read_before = app.last_read().await?;
                println!("-- restart: every client closed and made anew");
                for (_, c) in std::mem::take(&mut app.users) {
                    c.close().await?;
                }
                app.load().await?;
                out.last_read_after = app.last_read().await?;
                for (user, rooms) in &out.last_read_after {
                    for (room, offset) in rooms {
                        println!("  {user} last read #{room} up to offset {offset}");
                    }
                }
                if out.last_read_before != out.last_read_after {
                    bail!("last-read positions changed across the restart");
                }
            }
        }
    }
    for (_, c) in std::mem::take(&mut app.users) {
        c.close().await?;
    }
    if args.json {
        println!(
            "{}",
            json!({
                "delivered": out.delivered,
                "notified": out.notified,
                "last_read_before_restart": out.last_read_before,
                "last_read_after_restart": out.last_read_after,
                "mode": if args.bootstrap.is_some() { "bootstrap" } else { "embedded" },
            })
        );
    }
    Ok(())
}
