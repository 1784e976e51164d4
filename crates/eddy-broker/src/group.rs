//! One consumer group's membership, as Kafka's classic group protocol runs it; pure.
//!
//! The coordinator actor feeds it requests and the time, and delivers what it answers. Join
//! and sync requests are often answered later (when the rebalance completes, when the leader
//! sends the assignment): a method that parks a request returns `Ok`, and every answer, now or
//! later, comes out of [`Group::take_answers`]. Assignment itself is the clients' business, as
//! in Kafka: the group leader (a consumer) computes it and the coordinator hands it out.
//!
//! States, as Kafka names them: `Empty` (no members) → `PreparingRebalance` (waiting for every
//! member to join, at most the longest rebalance timeout; the first rebalance of an empty group
//! also waits `initial_rebalance_delay` for more members) → `CompletingRebalance` (joined, new
//! generation, waiting for the leader's assignment) → `Stable`. A member that joins, leaves or
//! stops heartbeating for its session timeout starts a new rebalance.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::BrokerError;

/// Where a group is in its rebalance cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupState {
    /// No members (offsets may still be committed by a standalone consumer).
    Empty,
    /// Waiting for the members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Deleted.
    Dead,
}

impl GroupState {
    /// The name Kafka's tools show.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// The coordinator's limits for groups, with Kafka's names and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms` (3 s): how long the first rebalance of an empty
    /// group waits for more members (extended by each new one, up to the rebalance timeout).
    pub initial_rebalance_delay: Duration,
    /// `group.min.session.timeout.ms` (6 s).
    pub min_session_timeout: Duration,
    /// `group.max.session.timeout.ms` (30 min).
    pub max_session_timeout: Duration,
}

impl Default for GroupConfig {
    fn default() -> GroupConfig {
        GroupConfig {
            initial_rebalance_delay: Duration::from_secs(3),
            min_session_timeout: Duration::from_secs(6),
            max_session_timeout: Duration::from_secs(1800),
        }
    }
}

/// A JoinGroup request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    /// The member id; empty for a new member.
    pub member_id: String,
    /// The client's id (prefix of a new member id).
    pub client_id: String,
    /// The client's host.
    pub client_host: String,
    /// Without a heartbeat for this long, the member is removed.
    pub session_timeout: Duration,
    /// How long the group waits for this member to rejoin in a rebalance.
    pub rebalance_timeout: Duration,
    /// `consumer` for consumers.
    pub protocol_type: String,
    /// The assignors the member supports, preferred first, each with its metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// A new member must first get an id and join again with it (JoinGroup v4+, KIP-394).
    pub require_known_member_id: bool,
}

/// A JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResult {
    /// The new generation.
    pub generation: i32,
    /// The group's protocol type.
    pub protocol_type: String,
    /// The assignor chosen.
    pub protocol: String,
    /// The leader's member id.
    pub leader: String,
    /// This member's id.
    pub member_id: String,
    /// For the leader only: every member with its metadata for the chosen assignor.
    pub members: Vec<(String, Bytes)>,
}

/// A SyncGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResult {
    /// The group's protocol type.
    pub protocol_type: String,
    /// The assignor in use.
    pub protocol: String,
    /// This member's assignment (opaque to the coordinator).
    pub assignment: Bytes,
}

/// An answer to a parked request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// To the join request parked for `member`.
    Join {
        /// The member.
        member: String,
        /// The answer.
        result: Result<JoinResult, BrokerError>,
    },
    /// To the sync request parked for `member`.
    Sync {
        /// The member.
        member: String,
        /// The answer.
        result: Result<SyncResult, BrokerError>,
    },
}

/// One member, as persisted and described.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// The member id.
    pub id: String,
    /// The client's id.
    pub client_id: String,
    /// The client's host.
    pub client_host: String,
    /// Session timeout, ms.
    pub session_timeout_ms: u64,
    /// Rebalance timeout, ms.
    pub rebalance_timeout_ms: u64,
    /// Supported assignors with their metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// The current assignment.
    pub assignment: Bytes,
}

/// What a group persists (to `__consumer_offsets`) each time it becomes stable or empty, and
/// what `describe` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSnapshot {
    /// The state.
    pub state: GroupState,
    /// The generation.
    pub generation: i32,
    /// The protocol type, once a member joined.
    pub protocol_type: Option<String>,
    /// The assignor chosen.
    pub protocol: Option<String>,
    /// The leader.
    pub leader: Option<String>,
    /// The members, in join order.
    pub members: Vec<MemberInfo>,
}

#[derive(Debug, Clone)]
struct Member {
    info: MemberInfo,
    last_seen: Instant,
    /// Has a join parked in the current rebalance.
    awaiting_join: bool,
    /// Has a sync parked.
    awaiting_sync: bool,
}

impl Member {
    fn session_timeout(&self) -> Duration {
        Duration::from_millis(self.info.session_timeout_ms)
    }
}

/// A consumer group's membership.
#[derive(Debug)]
pub struct Group {
    id: String,
    config: GroupConfig,
    state: GroupState,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    /// In join order.
    members: Vec<Member>,
    /// Ids handed out with MEMBER_ID_REQUIRED, valid until the deadline.
    pending_ids: BTreeMap<String, Instant>,
    /// When the current rebalance stops waiting for members that have not rejoined.
    rebalance_deadline: Option<Instant>,
    /// When the initial delay of the current rebalance ends.
    delay_until: Option<Instant>,
    /// Member ids are `<client id>-<nonce>-<counter>`.
    nonce: u64,
    next_member: u64,
    answers: Vec<Answer>,
    /// The persisted snapshot is out of date.
    dirty: bool,
}

impl Group {
    /// An empty group. `nonce` makes its new member ids unique across restarts (the actor
    /// passes the clock).
    pub fn new(id: impl Into<String>, config: GroupConfig, nonce: u64) -> Group {
        Group {
            id: id.into(),
            config,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: Vec::new(),
            pending_ids: BTreeMap::new(),
            rebalance_deadline: None,
            delay_until: None,
            nonce,
            next_member: 0,
            answers: Vec::new(),
            dirty: false,
        }
    }

    /// A group as it was persisted; its members get a full session from `now` to heartbeat.
    pub fn restore(
        id: impl Into<String>,
        config: GroupConfig,
        nonce: u64,
        snapshot: GroupSnapshot,
        now: Instant,
    ) -> Group {
        let mut g = Group::new(id, config, nonce);
        g.generation = snapshot.generation;
        g.protocol_type = snapshot.protocol_type;
        g.protocol = snapshot.protocol;
        g.leader = snapshot.leader;
        g.members = snapshot
            .members
            .into_iter()
            .map(|info| Member {
                info,
                last_seen: now,
                awaiting_join: false,
                awaiting_sync: false,
            })
            .collect();
        g.state = match snapshot.state {
            GroupState::Dead => GroupState::Dead,
            _ if g.members.is_empty() => GroupState::Empty,
            _ => GroupState::Stable,
        };
        g
    }

    /// The group id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The state.
    pub fn state(&self) -> GroupState {
        self.state
    }

    /// The generation.
    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// Answers to parked requests, in the order they were decided.
    pub fn take_answers(&mut self) -> Vec<Answer> {
        std::mem::take(&mut self.answers)
    }

    /// The snapshot to persist, if it changed since the last call (on becoming stable or
    /// empty, and on deletion).
    pub fn take_dirty(&mut self) -> Option<GroupSnapshot> {
        if std::mem::take(&mut self.dirty) {
            Some(self.snapshot())
        } else {
            None
        }
    }

    /// The group as `describe` shows it.
    pub fn snapshot(&self) -> GroupSnapshot {
        GroupSnapshot {
            state: self.state,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            members: self.members.iter().map(|m| m.info.clone()).collect(),
        }
    }

    fn member_index(&self, id: &str) -> Option<usize> {
        self.members.iter().position(|m| m.info.id == id)
    }

    fn unknown(&self, member: &str) -> BrokerError {
        BrokerError::UnknownMember {
            group: self.id.clone(),
            member: member.to_owned(),
        }
    }

    fn check_generation(&self, generation: i32) -> Result<(), BrokerError> {
        if generation != self.generation {
            return Err(BrokerError::IllegalGeneration {
                group: self.id.clone(),
                got: generation,
                current: self.generation,
            });
        }
        Ok(())
    }

    /// A JoinGroup request. `Ok(member id)`: parked under that id until the rebalance
    /// completes (its answer comes from [`Group::take_answers`], possibly at once).
    pub fn join(&mut self, req: JoinRequest, now: Instant) -> Result<String, BrokerError> {
        if self.state == GroupState::Dead {
            return Err(self.unknown(&req.member_id));
        }
        let (min, max) = (
            self.config.min_session_timeout,
            self.config.max_session_timeout,
        );
        if req.session_timeout < min || req.session_timeout > max {
            return Err(BrokerError::InvalidSessionTimeout {
                got_ms: req.session_timeout.as_millis() as u64,
                min_ms: min.as_millis() as u64,
                max_ms: max.as_millis() as u64,
            });
        }
        self.check_protocols(&req)?;
        let id = if req.member_id.is_empty() {
            let id = format!("{}-{:x}-{}", req.client_id, self.nonce, self.next_member);
            self.next_member += 1;
            if req.require_known_member_id {
                self.pending_ids
                    .insert(id.clone(), now + req.session_timeout);
                return Err(BrokerError::MemberIdRequired {
                    group: self.id.clone(),
                    member: id,
                });
            }
            id
        } else {
            req.member_id.clone()
        };
        let known = self.member_index(&id);
        if known.is_none() && self.pending_ids.remove(&id).is_none() && !req.member_id.is_empty() {
            return Err(self.unknown(&id));
        }
        let info = MemberInfo {
            id: id.clone(),
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout_ms: req.session_timeout.as_millis() as u64,
            rebalance_timeout_ms: req.rebalance_timeout.as_millis() as u64,
            protocols: req.protocols,
            assignment: Bytes::new(),
        };
        if self.protocol_type.is_none() {
            self.protocol_type = Some(req.protocol_type);
        }
        let is_new = known.is_none();
        match known {
            Some(i) => {
                let m = &mut self.members[i];
                let assignment = std::mem::take(&mut m.info.assignment);
                m.info = MemberInfo { assignment, ..info };
                m.last_seen = now;
                m.awaiting_join = true;
            }
            None => self.members.push(Member {
                info,
                last_seen: now,
                awaiting_join: true,
                awaiting_sync: false,
            }),
        }
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now);
        } else if is_new {
            if let Some(until) = self.delay_until {
                // A new member during the initial delay extends it (KIP-134).
                let cap = self.rebalance_deadline.unwrap_or(until);
                self.delay_until = Some((now + self.config.initial_rebalance_delay).min(cap));
            }
            let timeout = Duration::from_millis(
                self.members
                    .last()
                    .map_or(0, |m| m.info.rebalance_timeout_ms),
            );
            self.rebalance_deadline = self.rebalance_deadline.map(|d| d.max(now + timeout));
        }
        self.try_complete_join(now);
        Ok(id)
    }

    fn check_protocols(&self, req: &JoinRequest) -> Result<(), BrokerError> {
        let inconsistent = |reason: String| {
            Err(BrokerError::InconsistentGroupProtocol {
                group: self.id.clone(),
                reason,
            })
        };
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return inconsistent("a join needs a protocol type and at least one protocol".into());
        }
        let others: Vec<&Member> = self
            .members
            .iter()
            .filter(|m| m.info.id != req.member_id)
            .collect();
        if others.is_empty() {
            return Ok(());
        }
        if self
            .protocol_type
            .as_ref()
            .is_some_and(|t| *t != req.protocol_type)
        {
            return inconsistent(format!(
                "protocol type {} does not match the group's {:?}",
                req.protocol_type, self.protocol_type
            ));
        }
        let shared = req.protocols.iter().any(|(name, _)| {
            others
                .iter()
                .all(|m| m.info.protocols.iter().any(|(n, _)| n == name))
        });
        if !shared {
            return inconsistent("no assignor in common with the other members".into());
        }
        Ok(())
    }

    fn prepare_rebalance(&mut self, now: Instant) {
        // Syncs waiting for an assignment that will not come: rejoin.
        for m in &mut self.members {
            if std::mem::take(&mut m.awaiting_sync) {
                self.answers.push(Answer::Sync {
                    member: m.info.id.clone(),
                    result: Err(BrokerError::RebalanceInProgress(self.id.clone())),
                });
            }
        }
        let timeout = self
            .members
            .iter()
            .map(|m| m.info.rebalance_timeout_ms)
            .max()
            .map_or(Duration::ZERO, Duration::from_millis);
        let was_empty = self.state == GroupState::Empty;
        self.state = GroupState::PreparingRebalance;
        self.rebalance_deadline = Some(now + timeout);
        self.delay_until = if was_empty && !self.config.initial_rebalance_delay.is_zero() {
            Some((now + self.config.initial_rebalance_delay).min(now + timeout))
        } else {
            None
        };
    }

    fn try_complete_join(&mut self, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let delayed = self.delay_until.is_some_and(|d| now < d);
        let all_joined =
            self.members.iter().all(|m| m.awaiting_join) && self.pending_ids.is_empty();
        let expired = self.rebalance_deadline.is_some_and(|d| now >= d);
        if !(expired || (all_joined && !delayed)) {
            return;
        }
        // Members that did not rejoin in time are out.
        self.members.retain(|m| m.awaiting_join);
        self.pending_ids.clear();
        self.rebalance_deadline = None;
        self.delay_until = None;
        self.generation += 1;
        self.dirty = true;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            return;
        }
        let protocol = self.select_protocol();
        self.protocol = Some(protocol.clone());
        if self
            .leader
            .as_ref()
            .is_none_or(|l| self.member_index(l).is_none())
        {
            self.leader = self.members.first().map(|m| m.info.id.clone());
        }
        let leader = self.leader.clone().unwrap_or_default();
        let protocol_type = self.protocol_type.clone().unwrap_or_default();
        let everyone: Vec<(String, Bytes)> = self
            .members
            .iter()
            .map(|m| {
                let meta = m
                    .info
                    .protocols
                    .iter()
                    .find(|(n, _)| *n == protocol)
                    .map(|(_, b)| b.clone())
                    .unwrap_or_default();
                (m.info.id.clone(), meta)
            })
            .collect();
        self.state = GroupState::CompletingRebalance;
        for m in &mut self.members {
            m.awaiting_join = false;
            m.last_seen = now;
            m.info.assignment = Bytes::new();
            let members = if m.info.id == leader {
                everyone.clone()
            } else {
                Vec::new()
            };
            self.answers.push(Answer::Join {
                member: m.info.id.clone(),
                result: Ok(JoinResult {
                    generation: self.generation,
                    protocol_type: protocol_type.clone(),
                    protocol: protocol.clone(),
                    leader: leader.clone(),
                    member_id: m.info.id.clone(),
                    members,
                }),
            });
        }
    }

    /// Kafka's vote: among the assignors every member supports, each member votes for its
    /// most preferred; the most votes win (ties: the first member's preference order).
    fn select_protocol(&self) -> String {
        let Some(first) = self.members.first() else {
            return String::new();
        };
        let candidates: Vec<&String> = first
            .info
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                self.members
                    .iter()
                    .all(|m| m.info.protocols.iter().any(|(x, _)| x == *n))
            })
            .collect();
        let mut best: Option<(&String, usize)> = None;
        for c in &candidates {
            let votes = self
                .members
                .iter()
                .filter(|m| {
                    m.info
                        .protocols
                        .iter()
                        .map(|(n, _)| n)
                        .find(|n| candidates.contains(n))
                        == Some(*c)
                })
                .count();
            if best.is_none_or(|(_, v)| votes > v) {
                best = Some((c, votes));
            }
        }
        best.map(|(c, _)| c.clone()).unwrap_or_default()
    }

    /// A SyncGroup request; the leader's carries the assignment. `Ok`: parked; the answer
    /// comes from [`Group::take_answers`] (at once when the group is stable).
    pub fn sync(
        &mut self,
        member: &str,
        generation: i32,
        assignments: Option<Vec<(String, Bytes)>>,
        now: Instant,
    ) -> Result<(), BrokerError> {
        let Some(i) = self.member_index(member) else {
            return Err(self.unknown(member));
        };
        self.check_generation(generation)?;
        match self.state {
            GroupState::PreparingRebalance => {
                Err(BrokerError::RebalanceInProgress(self.id.clone()))
            }
            GroupState::Empty | GroupState::Dead => Err(self.unknown(member)),
            GroupState::Stable => {
                self.members[i].last_seen = now;
                let result = self.sync_result(i);
                self.answers.push(Answer::Sync {
                    member: member.to_owned(),
                    result: Ok(result),
                });
                Ok(())
            }
            GroupState::CompletingRebalance => {
                self.members[i].last_seen = now;
                self.members[i].awaiting_sync = true;
                let is_leader = self.leader.as_deref() == Some(member);
                if let (true, Some(assignments)) = (is_leader, assignments) {
                    for m in &mut self.members {
                        m.info.assignment = assignments
                            .iter()
                            .find(|(id, _)| *id == m.info.id)
                            .map(|(_, a)| a.clone())
                            .unwrap_or_default();
                    }
                    self.state = GroupState::Stable;
                    self.dirty = true;
                    for j in 0..self.members.len() {
                        if std::mem::take(&mut self.members[j].awaiting_sync) {
                            let result = self.sync_result(j);
                            self.answers.push(Answer::Sync {
                                member: self.members[j].info.id.clone(),
                                result: Ok(result),
                            });
                        }
                    }
                }
                Ok(())
            }
        }
    }

    fn sync_result(&self, i: usize) -> SyncResult {
        SyncResult {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol: self.protocol.clone().unwrap_or_default(),
            assignment: self.members[i].info.assignment.clone(),
        }
    }

    /// A Heartbeat: keeps the member's session; during a rebalance tells it to rejoin.
    pub fn heartbeat(
        &mut self,
        member: &str,
        generation: i32,
        now: Instant,
    ) -> Result<(), BrokerError> {
        let Some(i) = self.member_index(member) else {
            return Err(self.unknown(member));
        };
        self.check_generation(generation)?;
        self.members[i].last_seen = now;
        match self.state {
            GroupState::PreparingRebalance => {
                Err(BrokerError::RebalanceInProgress(self.id.clone()))
            }
            GroupState::Empty | GroupState::Dead => Err(self.unknown(member)),
            GroupState::CompletingRebalance | GroupState::Stable => Ok(()),
        }
    }

    /// A LeaveGroup for one member.
    pub fn leave(&mut self, member: &str, now: Instant) -> Result<(), BrokerError> {
        let Some(i) = self.member_index(member) else {
            return Err(self.unknown(member));
        };
        self.remove_member(i, now);
        Ok(())
    }

    fn remove_member(&mut self, i: usize, now: Instant) {
        let m = self.members.remove(i);
        let gone = self.unknown(&m.info.id);
        if m.awaiting_join {
            self.answers.push(Answer::Join {
                member: m.info.id.clone(),
                result: Err(gone.clone()),
            });
        }
        if m.awaiting_sync {
            self.answers.push(Answer::Sync {
                member: m.info.id.clone(),
                result: Err(gone),
            });
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(now),
            GroupState::PreparingRebalance | GroupState::Empty | GroupState::Dead => {}
        }
        self.try_complete_join(now);
    }

    /// Moves time on: removes members whose session expired, ends rebalances whose wait is
    /// over, forgets member ids never used.
    pub fn tick(&mut self, now: Instant) {
        self.pending_ids.retain(|_, deadline| now < *deadline);
        while let Some(i) = self
            .members
            .iter()
            .position(|m| !m.awaiting_join && now >= m.last_seen + m.session_timeout())
        {
            self.remove_member(i, now);
        }
        self.try_complete_join(now);
    }

    /// Whether an offset commit from `member` in `generation` is accepted: a standalone
    /// consumer (no member id, generation -1) commits only to a group without members; a
    /// member commits in its generation, except while the assignment is being handed out.
    pub fn check_commit(&self, member: &str, generation: i32) -> Result<(), BrokerError> {
        if member.is_empty() && generation < 0 {
            return match self.state {
                GroupState::Empty => Ok(()),
                GroupState::Dead => Err(BrokerError::GroupNotFound(self.id.clone())),
                _ => Err(BrokerError::IllegalGeneration {
                    group: self.id.clone(),
                    got: generation,
                    current: self.generation,
                }),
            };
        }
        if self.member_index(member).is_none() {
            return Err(self.unknown(member));
        }
        self.check_generation(generation)?;
        match self.state {
            GroupState::CompletingRebalance => {
                Err(BrokerError::RebalanceInProgress(self.id.clone()))
            }
            _ => Ok(()),
        }
    }

    /// Deletes the group: only an empty one (NON_EMPTY_GROUP otherwise).
    pub fn delete(&mut self) -> Result<(), BrokerError> {
        match self.state {
            GroupState::Empty => {
                self.state = GroupState::Dead;
                self.dirty = true;
                Ok(())
            }
            GroupState::Dead => Err(BrokerError::GroupNotFound(self.id.clone())),
            _ => Err(BrokerError::NonEmptyGroup(self.id.clone())),
        }
    }

    /// When [`Group::tick`] next has something to do, if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        let sessions = self
            .members
            .iter()
            .filter(|m| !m.awaiting_join)
            .map(|m| m.last_seen + m.session_timeout());
        let rebalance = match self.state {
            GroupState::PreparingRebalance => {
                let all_joined = self.members.iter().all(|m| m.awaiting_join);
                let delay = self.delay_until.filter(|_| all_joined);
                [self.rebalance_deadline, delay].into_iter().flatten().min()
            }
            _ => None,
        };
        sessions
            .chain(rebalance)
            .chain(self.pending_ids.values().copied())
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(10);

    fn req(member: &str, protocols: &[&str]) -> JoinRequest {
        JoinRequest {
            member_id: member.into(),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: S,
            rebalance_timeout: Duration::from_secs(30),
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::from(format!("meta-{p}"))))
                .collect(),
            require_known_member_id: false,
        }
    }

    fn group(delay: Duration) -> Group {
        let config = GroupConfig {
            initial_rebalance_delay: delay,
            ..GroupConfig::default()
        };
        Group::new("g", config, 7)
    }

    fn joined(answers: &[Answer]) -> Vec<JoinResult> {
        answers
            .iter()
            .filter_map(|a| match a {
                Answer::Join { result: Ok(r), .. } => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    /// Runs a full rebalance for the members parked in `g`, with the leader assigning
    /// `assignment(member)`; answers every member's sync.
    fn complete(g: &mut Group, t: Instant) -> (i32, Vec<(String, Bytes)>) {
        let results = joined(&g.take_answers());
        let leader = results.iter().find(|r| !r.members.is_empty()).unwrap();
        let generation = leader.generation;
        let plan: Vec<(String, Bytes)> = leader
            .members
            .iter()
            .map(|(id, _)| (id.clone(), Bytes::from(format!("for-{id}"))))
            .collect();
        for r in &results {
            let a = (r.member_id == r.leader).then(|| plan.clone());
            g.sync(&r.member_id, generation, a, t).unwrap();
        }
        let synced: Vec<(String, Bytes)> = g
            .take_answers()
            .into_iter()
            .filter_map(|a| match a {
                Answer::Sync {
                    member,
                    result: Ok(r),
                } => Some((member, r.assignment)),
                _ => None,
            })
            .collect();
        (generation, synced)
    }

    #[test]
    fn test_a_lone_member_waits_the_initial_delay_then_gets_its_assignment() {
        let mut g = group(Duration::from_secs(3));
        let t0 = Instant::now();
        let id = g.join(req("", &["range"]), t0).unwrap();
        assert!(g.take_answers().is_empty(), "waits for more members");
        assert_eq!(g.next_deadline(), Some(t0 + Duration::from_secs(3)));
        g.tick(t0 + Duration::from_secs(3));
        assert_eq!(g.state(), GroupState::CompletingRebalance);
        let (generation, synced) = complete(&mut g, t0 + Duration::from_secs(3));
        assert_eq!(generation, 1);
        assert_eq!(synced, vec![(id.clone(), Bytes::from(format!("for-{id}")))]);
        assert_eq!(g.state(), GroupState::Stable);
        assert!(g.take_dirty().is_some(), "stable groups are persisted");
    }

    #[test]
    fn test_new_members_during_the_delay_join_the_first_generation() {
        let mut g = group(Duration::from_secs(3));
        let t0 = Instant::now();
        g.join(req("", &["range"]), t0).unwrap();
        g.join(req("", &["range"]), t0 + Duration::from_secs(2))
            .unwrap();
        g.tick(t0 + Duration::from_secs(4));
        assert!(
            g.take_answers().is_empty(),
            "the delay restarts with a new member"
        );
        g.tick(t0 + Duration::from_secs(5));
        let (generation, synced) = complete(&mut g, t0 + Duration::from_secs(5));
        assert_eq!((generation, synced.len()), (1, 2));
    }

    #[test]
    fn test_a_join_rebalances_and_every_member_must_rejoin() {
        let mut g = group(Duration::ZERO);
        let t = Instant::now();
        let a = g.join(req("", &["range"]), t).unwrap();
        let (gen1, _) = complete(&mut g, t);
        // A second member: the group rebalances; the first is told by its heartbeat.
        let b = g.join(req("", &["range"]), t).unwrap();
        assert_eq!(g.state(), GroupState::PreparingRebalance);
        assert!(matches!(
            g.heartbeat(&a, gen1, t),
            Err(BrokerError::RebalanceInProgress(_))
        ));
        assert!(g.take_answers().is_empty(), "waits for a to rejoin");
        g.join(req(&a, &["range"]), t).unwrap();
        let (gen2, synced) = complete(&mut g, t);
        assert_eq!(gen2, gen1 + 1);
        let mut owners: Vec<&String> = synced.iter().map(|(m, _)| m).collect();
        owners.sort();
        let mut expected = vec![&a, &b];
        expected.sort();
        assert_eq!(owners, expected);
        // The old generation is fenced.
        assert!(matches!(
            g.heartbeat(&a, gen1, t),
            Err(BrokerError::IllegalGeneration { .. })
        ));
        assert!(matches!(
            g.check_commit(&a, gen1),
            Err(BrokerError::IllegalGeneration { .. })
        ));
        assert!(g.check_commit(&a, gen2).is_ok());
        assert!(matches!(
            g.heartbeat("stranger", gen2, t),
            Err(BrokerError::UnknownMember { .. })
        ));
    }

    /// A stable group of two members, a and b (a leads).
    fn two_members(g: &mut Group, t: Instant) -> (String, String, i32) {
        let a = g.join(req("", &["range"]), t).unwrap();
        g.take_answers();
        let b = g.join(req("", &["range"]), t).unwrap();
        g.join(req(&a, &["range"]), t).unwrap();
        let (generation, synced) = complete(g, t);
        assert_eq!(synced.len(), 2);
        (a, b, generation)
    }

    #[test]
    fn test_members_that_do_not_rejoin_in_time_are_dropped() {
        let mut g = group(Duration::ZERO);
        let t = Instant::now();
        let (a, b, generation) = two_members(&mut g, t);
        let c = g.join(req("", &["range"]), t).unwrap();
        g.join(req(&a, &["range"]), t).unwrap();
        // b keeps heartbeating but never rejoins: after the rebalance timeout (30 s) the
        // group goes on without it.
        for s in 1..=30 {
            let now = t + Duration::from_secs(s);
            assert!(matches!(
                g.heartbeat(&b, generation, now),
                Err(BrokerError::RebalanceInProgress(_))
            ));
            g.tick(now);
            if s < 30 {
                assert_eq!(g.state(), GroupState::PreparingRebalance, "at {s} s");
            }
        }
        let results = joined(&g.take_answers());
        let mut ids: Vec<String> = results.iter().map(|r| r.member_id.clone()).collect();
        ids.sort();
        let mut want = vec![a, c];
        want.sort();
        assert_eq!(ids, want);
        assert!(matches!(
            g.heartbeat(&b, generation + 1, t),
            Err(BrokerError::UnknownMember { .. })
        ));
    }

    #[test]
    fn test_a_silent_member_is_removed_after_its_session_timeout() {
        let mut g = group(Duration::ZERO);
        let t = Instant::now();
        let (a, b, generation) = two_members(&mut g, t);
        // a heartbeats, b goes silent.
        for s in 1..=10 {
            let now = t + Duration::from_secs(s);
            g.heartbeat(&a, generation, now).unwrap();
            g.tick(now);
            let want = if s < 10 {
                GroupState::Stable
            } else {
                GroupState::PreparingRebalance
            };
            assert_eq!(g.state(), want, "at {s} s (b's session ends at 10 s)");
        }
        assert!(g.heartbeat(&b, generation, t + S).is_err());
        g.join(req(&a, &["range"]), t + S).unwrap();
        let (gen2, synced) = complete(&mut g, t + S);
        assert_eq!(gen2, generation + 1);
        assert_eq!(synced.len(), 1);
    }

    #[test]
    fn test_last_member_leaving_empties_the_group() {
        let mut g = group(Duration::ZERO);
        let t = Instant::now();
        let a = g.join(req("", &["range"]), t).unwrap();
        let (generation, _) = complete(&mut g, t);
        g.leave(&a, t).unwrap();
        assert_eq!(g.state(), GroupState::Empty);
        assert_eq!(g.generation(), generation + 1);
        assert!(
            g.check_commit("", -1).is_ok(),
            "standalone commits to an empty group"
        );
        assert!(matches!(
            g.leave(&a, t),
            Err(BrokerError::UnknownMember { .. })
        ));
        assert!(g.delete().is_ok());
        assert_eq!(g.state(), GroupState::Dead);
    }

    #[test]
    fn test_kip_394_new_members_first_get_an_id() {
        let mut g = group(Duration::ZERO);
        let t = Instant::now();
        let mut r = req("", &["range"]);
        r.require_known_member_id = true;
        let id = match g.join(r.clone(), t) {
            Err(BrokerError::MemberIdRequired { member, .. }) => member,
            other => panic!("{other:?}"),
        };
        assert!(id.starts_with("c-7-"));
        r.member_id = id.clone();
        assert_eq!(g.join(r.clone(), t).unwrap(), id);
        // An id never handed out is refused.
        r.member_id = "made-up".into();
        assert!(matches!(
            g.join(r, t),
            Err(BrokerError::UnknownMember { .. })
        ));
    }

    #[test]
    fn test_protocols_are_voted_and_must_be_shared() {
        let mut g = group(Duration::ZERO);
        let t = Instant::now();
        g.join(req("", &["roundrobin", "range"]), t).unwrap();
        g.take_answers();
        g.join(req("", &["range", "roundrobin"]), t).unwrap();
        // Both rejoin; votes: roundrobin 1, range 1 -> the first member's preference.
        let results = joined(&g.take_answers());
        assert!(results.is_empty());
        let first = g.snapshot().members[0].id.clone();
        g.join(req(&first, &["roundrobin", "range"]), t).unwrap();
        let results = joined(&g.take_answers());
        assert!(results.iter().all(|r| r.protocol == "roundrobin"));
        assert!(matches!(
            g.join(req("", &["sticky"]), t),
            Err(BrokerError::InconsistentGroupProtocol { .. })
        ));
        let mut other = req("", &["range"]);
        other.protocol_type = "connect".into();
        assert!(matches!(
            g.join(other, t),
            Err(BrokerError::InconsistentGroupProtocol { .. })
        ));
    }

    #[test]
    fn test_bad_session_timeouts_and_syncs_are_refused() {
        let mut g = group(Duration::ZERO);
        let t = Instant::now();
        let mut r = req("", &["range"]);
        r.session_timeout = Duration::from_secs(1);
        assert!(matches!(
            g.join(r, t),
            Err(BrokerError::InvalidSessionTimeout { .. })
        ));
        let a = g.join(req("", &["range"]), t).unwrap();
        g.take_answers();
        assert!(matches!(
            g.sync(&a, 99, None, t),
            Err(BrokerError::IllegalGeneration { .. })
        ));
        assert!(matches!(
            g.check_commit(&a, 1),
            Err(BrokerError::RebalanceInProgress(_))
        ));
        assert!(matches!(g.delete(), Err(BrokerError::NonEmptyGroup(_))));
    }

    #[test]
    fn test_a_restored_group_is_stable_with_fresh_sessions() {
        let mut g = group(Duration::ZERO);
        let t = Instant::now();
        let a = g.join(req("", &["range"]), t).unwrap();
        let (generation, _) = complete(&mut g, t);
        let snap = g.take_dirty().unwrap();
        let bytes = rmp_serde::to_vec(&snap).unwrap();
        let back: GroupSnapshot = rmp_serde::from_slice(&bytes).unwrap();
        let later = t + Duration::from_secs(100);
        let mut r = Group::restore("g", GroupConfig::default(), 8, back, later);
        assert_eq!(
            (r.state(), r.generation()),
            (GroupState::Stable, generation)
        );
        r.heartbeat(&a, generation, later + Duration::from_secs(5))
            .unwrap();
        r.sync(&a, generation, None, later).unwrap();
        assert!(matches!(
            &r.take_answers()[..],
            [Answer::Sync { result: Ok(s), .. }] if s.assignment == format!("for-{a}")
        ));
    }
}
