//! The context consumer's state in LMDB: every message observed, in order, with the next
//! offset of every partition read and the messages still waiting for a response, all written
//! in ONE transaction per batch. A restart replays the stored messages through the
//! (deterministic) strategy and resumes each partition exactly at its stored offset.
//!
//! Databases: `messages` (seq, u64 big-endian -> MessagePack chat message), `offsets`
//! (topic, 0, partition big-endian -> next offset), `pending` (seq -> the topic the message
//! came from).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use eddy_client::TopicPartition;
use eddy_context::ChatMessage;
use heed::types::Bytes as RawBytes;
use heed::{CommitOrAbort, Database, EnvOpenOptions, WithoutTls};

use crate::error::PipelineError;

type Db = Database<'static, RawBytes, RawBytes>;

/// One batch's changes, committed together.
#[derive(Debug, Default)]
pub struct Batch {
    /// New messages: (seq, MessagePack bytes).
    pub messages: Vec<(u64, Vec<u8>)>,
    /// Next offsets read.
    pub offsets: Vec<(TopicPartition, u64)>,
    /// Partitions whose offsets are forgotten (their topic was deleted).
    pub offsets_gone: Vec<TopicPartition>,
    /// Messages now waiting for a response: (seq, source topic).
    pub pending_add: Vec<(u64, String)>,
    /// Messages answered (or given up on).
    pub pending_done: Vec<u64>,
}

impl Batch {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.offsets.is_empty()
            && self.offsets_gone.is_empty()
            && self.pending_add.is_empty()
            && self.pending_done.is_empty()
    }
}

/// The state store. See the [module docs](self).
#[derive(Debug)]
pub struct ContextStore {
    env: heed::Env<WithoutTls>,
    messages: Db,
    offsets: Db,
    pending: Db,
    path: PathBuf,
}

fn offset_key(tp: &TopicPartition) -> Vec<u8> {
    let mut k = Vec::with_capacity(tp.0.len() + 5);
    k.extend_from_slice(tp.0.as_bytes());
    k.push(0);
    k.extend_from_slice(&tp.1.to_be_bytes());
    k
}

fn u64_of(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

impl ContextStore {
    /// Opens (creating it if needed) the state in `dir`. Every commit is fsynced.
    pub fn open(dir: impl AsRef<Path>, map_size: usize) -> Result<ContextStore, PipelineError> {
        let dir = dir.as_ref();
        let path = dir.display().to_string();
        let err = |source: heed::Error| PipelineError::Store {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| err(heed::Error::Io(e)))?;
        let mut options = EnvOpenOptions::new().read_txn_without_tls();
        options.map_size(map_size).max_dbs(3);
        // SAFETY: LMDB maps the directory's data file. The mapping stays sound as long as no one
        // modifies the file outside LMDB or breaks its lock file; the directory belongs to this
        // context consumer alone, heed refuses a second open in this process, and NO_LOCK is
        // not used.
        #[allow(unsafe_code)]
        let env = unsafe { options.open(dir) }.map_err(err)?;
        let wtxn = env.write_txn().map_err(err)?;
        let (messages, offsets, pending) = env
            .create_databases_and_commit(wtxn, |opener, wtxn| -> Result<_, heed::Error> {
                let m = opener.create_database::<RawBytes, RawBytes>(wtxn, Some("messages"))?;
                let o = opener.create_database::<RawBytes, RawBytes>(wtxn, Some("offsets"))?;
                let p = opener.create_database::<RawBytes, RawBytes>(wtxn, Some("pending"))?;
                Ok(CommitOrAbort::<_, ()>::Commit((m, o, p)))
            })
            .map_err(err)?
            .unwrap_commit();
        Ok(ContextStore {
            env,
            messages,
            offsets,
            pending,
            path: dir.to_path_buf(),
        })
    }

    fn err(&self, source: heed::Error) -> PipelineError {
        PipelineError::Store {
            path: self.path.display().to_string(),
            source,
        }
    }

    fn corrupt(&self, reason: String) -> PipelineError {
        PipelineError::Corrupt {
            path: self.path.display().to_string(),
            reason,
        }
    }

    /// Calls `f` with every stored message, in the order observed.
    pub fn for_each_message(
        &self,
        mut f: impl FnMut(u64, ChatMessage) -> Result<(), PipelineError>,
    ) -> Result<(), PipelineError> {
        let txn = self.env.read_txn().map_err(|e| self.err(e))?;
        for item in self.messages.iter(&txn).map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let seq = u64_of(k).ok_or_else(|| self.corrupt(format!("message key {k:?}")))?;
            let m =
                ChatMessage::decode(v).map_err(|e| self.corrupt(format!("message {seq}: {e}")))?;
            f(seq, m)?;
        }
        Ok(())
    }

    /// The positions of the first stored message and the next one to store: `(first, next)`,
    /// `None` when no message is stored.
    pub fn bounds(&self) -> Result<Option<(u64, u64)>, PipelineError> {
        let txn = self.env.read_txn().map_err(|e| self.err(e))?;
        let first = self.messages.first(&txn).map_err(|e| self.err(e))?;
        let last = self.messages.last(&txn).map_err(|e| self.err(e))?;
        match (first, last) {
            (Some((f, _)), Some((l, _))) => {
                let f = u64_of(f).ok_or_else(|| self.corrupt(format!("message key {f:?}")))?;
                let l = u64_of(l).ok_or_else(|| self.corrupt(format!("message key {l:?}")))?;
                Ok(Some((f, l + 1)))
            }
            _ => Ok(None),
        }
    }

    /// Forgets the messages before position `seq`, and their pending responses, in one
    /// transaction; answers how many messages it removed.
    pub fn forget_before(&self, seq: u64) -> Result<u64, PipelineError> {
        let mut txn = self.env.write_txn().map_err(|e| self.err(e))?;
        let end = seq.to_be_bytes();
        let range = (
            std::ops::Bound::Unbounded,
            std::ops::Bound::Excluded(&end[..]),
        );
        let removed = self
            .messages
            .delete_range(&mut txn, &range)
            .map_err(|e| self.err(e))?;
        self.pending
            .delete_range(&mut txn, &range)
            .map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))?;
        Ok(removed as u64)
    }

    /// One stored message.
    pub fn message(&self, seq: u64) -> Result<Option<ChatMessage>, PipelineError> {
        let txn = self.env.read_txn().map_err(|e| self.err(e))?;
        match self
            .messages
            .get(&txn, &seq.to_be_bytes())
            .map_err(|e| self.err(e))?
        {
            Some(v) => ChatMessage::decode(v)
                .map(Some)
                .map_err(|e| self.corrupt(format!("message {seq}: {e}"))),
            None => Ok(None),
        }
    }

    /// The next offset of every partition read.
    pub fn offsets(&self) -> Result<BTreeMap<TopicPartition, u64>, PipelineError> {
        let txn = self.env.read_txn().map_err(|e| self.err(e))?;
        let mut out = BTreeMap::new();
        for item in self.offsets.iter(&txn).map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let bad = || self.corrupt(format!("offset key {k:?}"));
            // The topic, a 0, and four bytes of partition.
            let zero = k.len().checked_sub(5).ok_or_else(bad)?;
            if k[zero] != 0 {
                return Err(bad());
            }
            let topic = std::str::from_utf8(&k[..zero]).map_err(|_| bad())?;
            let partition = u32::from_be_bytes(k[zero + 1..].try_into().map_err(|_| bad())?);
            let offset = u64_of(v).ok_or_else(bad)?;
            out.insert((topic.to_owned(), partition), offset);
        }
        Ok(out)
    }

    /// Messages waiting for a response: (seq, source topic).
    pub fn pending(&self) -> Result<Vec<(u64, String)>, PipelineError> {
        let txn = self.env.read_txn().map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in self.pending.iter(&txn).map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let seq = u64_of(k).ok_or_else(|| self.corrupt(format!("pending key {k:?}")))?;
            let topic = String::from_utf8(v.to_vec())
                .map_err(|_| self.corrupt(format!("pending topic of {seq}")))?;
            out.push((seq, topic));
        }
        Ok(out)
    }

    /// Writes `batch` in one transaction (fsynced before this returns).
    pub fn commit(&self, batch: &Batch) -> Result<(), PipelineError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut txn = self.env.write_txn().map_err(|e| self.err(e))?;
        for (seq, bytes) in &batch.messages {
            self.messages
                .put(&mut txn, &seq.to_be_bytes(), bytes)
                .map_err(|e| self.err(e))?;
        }
        for (tp, next) in &batch.offsets {
            self.offsets
                .put(&mut txn, &offset_key(tp), &next.to_be_bytes())
                .map_err(|e| self.err(e))?;
        }
        for tp in &batch.offsets_gone {
            self.offsets
                .delete(&mut txn, &offset_key(tp))
                .map_err(|e| self.err(e))?;
        }
        for (seq, topic) in &batch.pending_add {
            self.pending
                .put(&mut txn, &seq.to_be_bytes(), topic.as_bytes())
                .map_err(|e| self.err(e))?;
        }
        for seq in &batch.pending_done {
            self.pending
                .delete(&mut txn, &seq.to_be_bytes())
                .map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_context::conformance::sample_chat;

    #[test]
    fn a_batch_is_all_there_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let chat = sample_chat();
        {
            let s = ContextStore::open(dir.path(), 1 << 24).unwrap();
            let batch = Batch {
                messages: chat
                    .iter()
                    .enumerate()
                    .map(|(i, m)| (i as u64, m.to_msgpack().unwrap()))
                    .collect(),
                offsets: vec![
                    (("user_ann".into(), 3), 17),
                    (("user_a".into(), 0), 2),
                    (("user_gone".into(), 1), 5),
                ],
                offsets_gone: vec![],
                pending_add: vec![(0, "user_ann".into()), (1, "user_ann".into())],
                pending_done: vec![],
            };
            s.commit(&batch).unwrap();
            s.commit(&Batch {
                pending_done: vec![0],
                offsets_gone: vec![("user_gone".into(), 1)],
                ..Batch::default()
            })
            .unwrap();
        }
        let s = ContextStore::open(dir.path(), 1 << 24).unwrap();
        let mut seen = Vec::new();
        s.for_each_message(|seq, m| {
            seen.push((seq, m));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen.len(), chat.len());
        assert!(seen.iter().zip(&chat).all(|((_, a), b)| a == b));
        let offsets = s.offsets().unwrap();
        assert_eq!(offsets[&("user_ann".to_owned(), 3)], 17);
        assert_eq!(offsets[&("user_a".to_owned(), 0)], 2);
        assert_eq!(offsets.len(), 2, "{offsets:?}");
        assert_eq!(s.pending().unwrap(), vec![(1, "user_ann".to_owned())]);
        assert_eq!(s.message(1).unwrap().as_ref(), Some(&chat[1]));
        assert_eq!(s.message(999).unwrap(), None);
    }

    #[test]
    fn forgetting_removes_the_oldest_messages_and_their_pending_responses() {
        let dir = tempfile::tempdir().unwrap();
        let chat = sample_chat();
        let s = ContextStore::open(dir.path(), 1 << 24).unwrap();
        assert_eq!(s.bounds().unwrap(), None);
        s.commit(&Batch {
            messages: chat
                .iter()
                .enumerate()
                .map(|(i, m)| (i as u64 + 300, m.to_msgpack().unwrap()))
                .collect(),
            pending_add: vec![(300, "a".into()), (302, "b".into())],
            ..Batch::default()
        })
        .unwrap();
        let n = chat.len() as u64;
        assert_eq!(s.bounds().unwrap(), Some((300, 300 + n)));
        assert_eq!(s.forget_before(302).unwrap(), 2);
        assert_eq!(s.bounds().unwrap(), Some((302, 300 + n)));
        assert_eq!(s.pending().unwrap(), vec![(302, "b".to_owned())]);
        assert_eq!(s.message(301).unwrap(), None);
        assert_eq!(s.message(302).unwrap().as_ref(), Some(&chat[2]));
        // Nothing before the first: nothing removed.
        assert_eq!(s.forget_before(10).unwrap(), 0);
    }
}
