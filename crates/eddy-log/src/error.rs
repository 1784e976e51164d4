//! The one error type of this crate.

use eddy_types::{ClassifyError, ErrorKind, PartitionId};

/// Everything that can go wrong in the partition log.
///
/// Variants that describe a refused request (`InvalidBatch`, `OffsetOutOfRange`, ...) are raised
/// before anything is written, so a refused append leaves the log exactly as it was.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A record batch failed validation (length, magic, CRC, counts); nothing was written.
    #[error("invalid record batch at byte {position}: {reason}")]
    InvalidBatch {
        /// Byte position of the offending batch inside the appended buffer.
        position: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The partition was never created in this log directory, or was deleted.
    #[error("unknown partition {0}")]
    UnknownPartition(PartitionId),
    /// `create_partitions` named a partition that exists already.
    #[error("partition {0} exists already")]
    PartitionExists(PartitionId),
    /// An offset outside `[log_start, log_end]` was asked for.
    #[error("offset {offset} is out of range for partition {partition} (log start {log_start}, log end {log_end})")]
    OffsetOutOfRange {
        /// The partition.
        partition: PartitionId,
        /// The offset that was asked for.
        offset: u64,
        /// First offset still in the log.
        log_start: u64,
        /// Offset the next appended record will get.
        log_end: u64,
    },
    /// A replica append did not start at the follower's log end.
    #[error("replica append to {partition} starts at offset {got}, log end is {expected}")]
    NonContiguousReplicaAppend {
        /// The partition.
        partition: PartitionId,
        /// The follower's log end.
        expected: u64,
        /// Base offset of the first appended batch.
        got: u64,
    },
    /// The LMDB map is full; nothing of the failed commit was written.
    #[error("log map is full ({map_size} bytes); raise the map size")]
    MapFull {
        /// The configured map size in bytes.
        map_size: usize,
    },
    /// The disk is full; nothing of the failed commit was written.
    #[error("disk is full under {path}")]
    DiskFull {
        /// The log directory.
        path: String,
    },
    /// The filesystem of the log directory refuses writes (mounted or turned read-only, as
    /// ext4 does after an I/O error); nothing of the failed commit was written.
    #[error("log directory {path} is on a read-only filesystem; nothing was written")]
    ReadOnly {
        /// The log directory.
        path: String,
    },
    /// A write failed this log directory's environment (LMDB's fatal state): it was reopened
    /// read-only, serves reads, and refuses writes until the process restarts.
    #[error("log directory {path} failed ({reason}); it serves reads only until restart")]
    Failed {
        /// The log directory.
        path: String,
        /// The error that failed it.
        reason: String,
    },
    /// The log directory is already open in this process.
    #[error("log directory {path} is already open in this process")]
    AlreadyOpen {
        /// The log directory.
        path: String,
    },
    /// The writer thread has stopped (the store is closing or a previous commit hit a bug).
    #[error("the log writer has stopped")]
    WriterStopped,
    /// Stored bytes did not decode (a metadata record or a batch header).
    #[error("corrupt data in {what}: {reason}")]
    Corrupt {
        /// Which record.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// A metadata value could not be encoded.
    #[error("cannot encode metadata record {key}")]
    Encode {
        /// The metadata key, printed lossily.
        key: String,
        /// The encoder's error.
        #[source]
        source: rmp_serde::encode::Error,
    },
    /// Any other storage failure reported by LMDB or the OS.
    #[error("storage failure in {path}: {source}")]
    Storage {
        /// The log directory.
        path: String,
        /// What LMDB or the OS said.
        #[source]
        source: heed::Error,
    },
}

impl LogError {
    /// Wraps a heed error, singling out the two ways storage fills up.
    pub(crate) fn from_heed(source: heed::Error, path: &str, map_size: usize) -> LogError {
        match &source {
            heed::Error::Mdb(heed::MdbError::MapFull) => LogError::MapFull { map_size },
            heed::Error::Io(io) if io.raw_os_error() == Some(28) => LogError::DiskFull {
                path: path.to_string(),
            },
            heed::Error::Io(io) if io.raw_os_error() == Some(30) => LogError::ReadOnly {
                path: path.to_string(),
            },
            heed::Error::EnvAlreadyOpened => LogError::AlreadyOpen {
                path: path.to_string(),
            },
            _ => LogError::Storage {
                path: path.to_string(),
                source,
            },
        }
    }

    pub(crate) fn invalid(position: usize, reason: impl Into<String>) -> LogError {
        LogError::InvalidBatch {
            position,
            reason: reason.into(),
        }
    }
}

impl ClassifyError for LogError {
    fn kind(&self) -> ErrorKind {
        match self {
            LogError::InvalidBatch { .. } | LogError::NonContiguousReplicaAppend { .. } => {
                ErrorKind::Invalid
            }
            LogError::UnknownPartition(_) => ErrorKind::NotFound,
            LogError::PartitionExists(_) => ErrorKind::AlreadyExists,
            LogError::OffsetOutOfRange { .. } => ErrorKind::OutOfRange,
            LogError::MapFull { .. } | LogError::DiskFull { .. } => ErrorKind::StorageFull,
            LogError::AlreadyOpen { .. } | LogError::WriterStopped => ErrorKind::Unavailable,
            LogError::Corrupt { .. } => ErrorKind::Corrupt,
            LogError::ReadOnly { .. } | LogError::Failed { .. } | LogError::Storage { .. } => {
                ErrorKind::StorageFailed
            }
            LogError::Encode { .. } => ErrorKind::Internal,
        }
    }
}
