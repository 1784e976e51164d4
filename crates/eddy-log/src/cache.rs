//! The page-cache window: the writer drops the page cache of the data file's older part.
//!
//! LMDB writes commits with `pwritev` into the OS page cache, and a growing log keeps asking
//! the kernel for new page-cache pages. Each one costs more than a copy: free memory that sat
//! unused has to be found, and on a virtual machine whose balloon reports free pages to the
//! host (this project's reference machine) the first write to such a page also faults in the
//! host. Measured there, writing into page cache taken from long-free memory ran at 696 MiB/s,
//! into memory freed moments before at 2,025 MiB/s; and the cost lands inside the commit's
//! `writev`, so every request waiting for that commit waits for it too.
//!
//! The writer therefore tells the kernel, after a commit, that the part of the file more than
//! [`LogConfig::page_cache_window`](crate::LogConfig) bytes behind its end is not needed
//! (`POSIX_FADV_DONTNEED`, in steps of at most [`TRIM_STEP`]). The pages it frees are the
//! ones the next commits get. Nothing is lost: the data is on disk (synced in `Sync` mode; in
//! `Periodic` mode the kernel writes dirty pages back before dropping them), and a reader of
//! older records reads it from there. The newest records, which tail consumers and followers
//! read, stay cached. Pages that a reader has mapped stay too (the kernel does not drop mapped
//! pages on this advice). A log that stops growing, because retention frees pages that LMDB
//! then reuses, drops nothing more.

use std::fs::File;
use std::path::Path;

use tracing::warn;

/// Largest range dropped at once: about 0.7 ms of the writer's time on the reference machine.
pub const TRIM_STEP: u64 = 16 << 20;

/// Alignment of the ranges dropped (the kernel only drops whole pages).
const PAGE: u64 = 4096;

/// The writer's record of what it dropped.
#[derive(Debug)]
pub(crate) struct CacheTrim {
    /// The data file, read-only; `None` when the window is off or the file cannot be opened.
    file: Option<File>,
    window: u64,
    /// Everything before this byte was dropped.
    dropped_upto: u64,
}

impl CacheTrim {
    /// For the environment in `dir`; a `window` of 0 turns it off.
    pub(crate) fn new(dir: &Path, window: u64) -> CacheTrim {
        let file = if window == 0 || !cfg!(target_os = "linux") {
            None
        } else {
            match File::open(dir.join("data.mdb")) {
                Ok(f) => Some(f),
                Err(e) => {
                    warn!(dir = %dir.display(), error = %e, "cannot open the data file: the page cache window is off");
                    None
                }
            }
        };
        CacheTrim {
            file,
            window,
            dropped_upto: 0,
        }
    }

    /// After a commit: drops the next step of the file's older part, if the file has grown
    /// that far. Returns the bytes dropped.
    pub(crate) fn after_commit(&mut self) -> u64 {
        let Some(file) = &self.file else { return 0 };
        let len = match file.metadata() {
            Ok(m) => m.len(),
            Err(_) => return 0,
        };
        let step = self.window.clamp(PAGE, TRIM_STEP);
        let Some(end) = len.checked_sub(self.window) else {
            return 0;
        };
        let end = (end / PAGE * PAGE).min(self.dropped_upto + step);
        if end < self.dropped_upto + step {
            return 0;
        }
        let from = self.dropped_upto;
        match drop_range(file, from, end - from) {
            Ok(()) => {
                self.dropped_upto = end;
                end - from
            }
            Err(e) => {
                warn!(error = %e, "dropping the page cache failed: the page cache window is off");
                self.file = None;
                0
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn drop_range(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    use rustix::fs::{fadvise, Advice};
    let Some(len) = std::num::NonZeroU64::new(len) else {
        return Ok(());
    };
    fadvise(file, offset, Some(len), Advice::DontNeed).map_err(std::io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn drop_range(_file: &File, _offset: u64, _len: u64) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(dir: &Path, len: usize) {
        let mut f = File::create(dir.join("data.mdb")).expect("create");
        f.write_all(&vec![7u8; len]).expect("write");
        f.sync_all().expect("sync");
    }

    #[test]
    fn test_nothing_is_dropped_within_the_window() {
        let dir = tempfile::tempdir().expect("tempdir");
        file_of(dir.path(), 3 << 20);
        let mut t = CacheTrim::new(dir.path(), 2 << 20);
        // 1 MiB lies past the window, less than a step (2 MiB, the window itself).
        assert_eq!(t.after_commit(), 0);
    }

    #[test]
    fn test_the_older_part_is_dropped_a_step_at_a_time_and_only_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        file_of(dir.path(), 10 << 20);
        let mut t = CacheTrim::new(dir.path(), 1 << 20);
        let mut dropped = Vec::new();
        loop {
            match t.after_commit() {
                0 => break,
                n => dropped.push(n),
            }
        }
        // 9 MiB lie behind the window, dropped in steps of the window's size.
        assert_eq!(dropped, vec![1 << 20; 9]);
        file_of(dir.path(), 10 << 20);
        assert_eq!(
            t.after_commit(),
            0,
            "a file that did not grow drops nothing more"
        );
    }

    #[test]
    fn test_a_window_of_zero_is_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        file_of(dir.path(), 4 << 20);
        let mut t = CacheTrim::new(dir.path(), 0);
        assert_eq!(t.after_commit(), 0);
    }

    #[test]
    fn test_a_missing_file_turns_it_off_without_failing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut t = CacheTrim::new(dir.path(), 1 << 20);
        assert_eq!(t.after_commit(), 0);
    }
}
