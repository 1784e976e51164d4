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
//! (`POSIX_FADV_DONTNEED`, at least [`MIN_STEP`] and at most [`TRIM_STEP`] at a time). The
//! pages it frees are the ones the next commits get. Nothing is lost: the data is on disk
//! (synced in `Sync` mode; in `Periodic` mode the kernel writes dirty pages back before
//! dropping them), and a reader of older records reads it from there. The newest records,
//! which tail consumers and followers read, stay cached. A log that stops growing, because
//! retention frees pages that LMDB then reuses, drops nothing more.
//!
//! The kernel keeps a page that some process has mapped, whatever the advice; and every page a
//! reader looked at through LMDB's map stays mapped in this process until it is unmapped. So
//! the window first unmaps the range from LMDB's map (`MADV_DONTNEED`, which on a read-only
//! shared file mapping only drops this process's page-table entries: the next access reads
//! the same bytes back from the file), then drops it from the page cache. Reads of records
//! behind the window (a consumer catching up) do the same with the pages they read, once
//! they have copied them: a catch-up read then leaves the page cache as it found it, instead
//! of filling memory with mapped pages that the window can no longer free. The map's address
//! is found in `/proc/self/maps` (LMDB does not tell it); without it the window still drops
//! what is not mapped.
//!
//! With the window on, a fault in LMDB's map reads just its page (`MDB_NORDAHEAD`). The
//! kernel's read-around of a mapped file (8 MiB on the reference machine's disk) brought in
//! the pages around each fault, mostly other partitions' pieces written in the same commits,
//! and no read dropped those: after a consumer read a topic from its start, 90% of the part
//! behind the window was cached again. A read behind the window instead first walks the
//! tree for the pieces it will copy (LMDB gives their addresses without reading them), asks
//! the kernel for exactly those pages at once (`POSIX_FADV_WILLNEED`), then copies them.
//! Reads within the window (cached) skip that walk: done for every read, it cost produce
//! and e2e in the benchmarks. Everything written before the store was opened counts as
//! behind the window.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use heed::{Env, WithoutTls};
use tracing::warn;

/// Largest range the writer drops at once (about 0.8 ms on the reference machine, idle).
pub const TRIM_STEP: u64 = 16 << 20;

/// Smallest range the writer drops: it drops little and often rather than stall one commit
/// in many (16 MiB at once took 5 ms under load on the reference machine).
pub const MIN_STEP: u64 = 1 << 20;

/// Alignment of the ranges dropped (the kernel only drops whole pages).
const PAGE: u64 = 4096;

/// Two pieces a read copied this close are dropped as one range, with what lies between
/// (the tree's pages it went through; the other partitions' pieces between them were not
/// read, so dropping them costs nothing).
const DROP_GAP: u64 = 8 << 20;

/// The most a read asks the kernel to read ahead at once.
pub(crate) const PLAN_MAX: usize = 64 << 20;

/// LMDB's map of the data file in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MapRegion {
    base: usize,
    len: usize,
}

/// The data file of one environment, as the page-cache window sees it.
///
/// It holds a handle of the environment, so LMDB's map, which it unmaps ranges of, stays
/// mapped as long as it lives.
pub(crate) struct PageCache {
    /// The data file, read-only (for the advice).
    file: File,
    /// LMDB's map of it, when found.
    map: Option<MapRegion>,
    window: u64,
    /// Everything before this byte was dropped by the writer (a read behind it drops the
    /// pages it read, once done).
    dropped_upto: AtomicU64,
    /// Keeps the map mapped (`None` only in unit tests, which have no map).
    _env: Option<Env<WithoutTls>>,
}

impl std::fmt::Debug for PageCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageCache")
            .field("map", &self.map)
            .field("window", &self.window)
            .field("dropped_upto", &self.dropped_upto)
            .finish()
    }
}

impl PageCache {
    /// For the environment `env` of `dir`; `None` when the window is 0 (off) or the file
    /// cannot be opened.
    pub(crate) fn open(env: &Env<WithoutTls>, dir: &Path, window: u64) -> Option<PageCache> {
        if window == 0 || !cfg!(target_os = "linux") {
            return None;
        }
        let file = match File::open(dir.join("data.mdb")) {
            Ok(f) => f,
            Err(e) => {
                warn!(dir = %dir.display(), error = %e, "cannot open the data file: the page cache window is off");
                return None;
            }
        };
        let map = find_map(&file);
        if map.is_none() {
            warn!(dir = %dir.display(), "LMDB's map of the data file not found: the page cache window drops only unmapped pages");
        }
        // Everything written before opening counts as behind the window: after a restart
        // its pages are cold (or the kernel's to reclaim), so reads of it read ahead what
        // they will copy and drop it afterwards; the window covers what this process writes.
        let behind = file.metadata().map_or(0, |m| m.len() / PAGE * PAGE);
        Some(PageCache {
            file,
            map,
            window,
            dropped_upto: AtomicU64::new(behind),
            _env: Some(env.clone()),
        })
    }

    /// Whether LMDB's map was found (ranges are unmapped before they are dropped).
    #[cfg(test)]
    pub(crate) fn unmaps(&self) -> bool {
        self.map.is_some()
    }

    /// Unmaps `[offset, offset + len)` from LMDB's map, then drops it from the page cache.
    fn drop_range(&self, offset: u64, len: u64) -> std::io::Result<()> {
        if let Some(map) = self.map {
            unmap(map, offset, len);
        }
        advise(&self.file, offset, len, Need::Dont)
    }

    /// Tracks the pages one read copies, to drop those behind the window afterwards.
    pub(crate) fn read(&self) -> ReadPages<'_> {
        ReadPages {
            cache: self,
            below: self.dropped_upto.load(Ordering::Acquire),
            ahead: Vec::new(),
            ranges: Vec::new(),
        }
    }
}

/// The writer's side: drops the next part of the file's older part after each commit.
#[derive(Debug, Default)]
pub(crate) struct CacheTrim {
    /// Off after a failed advice.
    off: bool,
}

impl CacheTrim {
    /// After a commit: drops what now lies behind the window, if at least [`MIN_STEP`] of it
    /// (at most [`TRIM_STEP`]). Returns the bytes dropped.
    pub(crate) fn after_commit(&mut self, cache: Option<&PageCache>) -> u64 {
        let Some(cache) = cache.filter(|_| !self.off) else {
            return 0;
        };
        let len = match cache.file.metadata() {
            Ok(m) => m.len(),
            Err(_) => return 0,
        };
        let Some(due) = len.checked_sub(cache.window) else {
            return 0;
        };
        let from = cache.dropped_upto.load(Ordering::Relaxed);
        let end = (due / PAGE * PAGE).min(from + TRIM_STEP);
        if end < from + MIN_STEP.min(cache.window.max(PAGE)) {
            return 0;
        }
        match cache.drop_range(from, end - from) {
            Ok(()) => {
                cache.dropped_upto.store(end, Ordering::Release);
                end - from
            }
            Err(e) => {
                warn!(error = %e, "dropping the page cache failed: the page cache window is off");
                self.off = true;
                0
            }
        }
    }
}

/// The pages of one read that lie behind the window: read ahead together, and dropped once
/// copied.
pub(crate) struct ReadPages<'a> {
    cache: &'a PageCache,
    /// The writer's mark when the read started.
    below: u64,
    /// Page-aligned runs of the pages the read will copy, to read ahead together.
    ahead: Vec<(u64, u64)>,
    /// Page-aligned file ranges to drop.
    ranges: Vec<(u64, u64)>,
}

impl ReadPages<'_> {
    /// The page-aligned file range of a value (a slice of LMDB's map).
    fn pages(&self, value: &[u8]) -> Option<(u64, u64)> {
        let map = self.cache.map?;
        let offset = (value.as_ptr() as usize).checked_sub(map.base)?;
        if offset.saturating_add(value.len()) > map.len {
            return None;
        }
        let start = offset as u64 / PAGE * PAGE;
        let end = (offset as u64 + value.len() as u64).div_ceil(PAGE) * PAGE;
        Some((start, end))
    }

    /// The pages of a value that lies behind the writer's mark.
    fn behind(&self, value: &[u8]) -> Option<(u64, u64)> {
        self.pages(value).filter(|(_, end)| *end <= self.below)
    }

    /// Whether a value lies behind the writer's mark (its read should be planned).
    pub(crate) fn is_behind(&self, value: &[u8]) -> bool {
        self.behind(value).is_some()
    }

    /// First pass: a value the read will copy (not touched: LMDB hands out the address of an
    /// overflow page without reading it). Returns false once past the writer's mark (the
    /// window, where the pages are cached) or outside the map.
    pub(crate) fn plan(&mut self, value: &[u8]) -> bool {
        let Some((start, end)) = self.behind(value) else {
            return false;
        };
        match self.ahead.last_mut() {
            Some((_, e)) if *e == start => *e = end,
            _ => self.ahead.push((start, end)),
        }
        true
    }

    /// Asks the kernel to read the planned pages, all at once: only this read's pages, where
    /// the kernel's own read-ahead would read the other partitions' pieces between them too.
    pub(crate) fn read_ahead(&mut self) {
        for (start, end) in self.ahead.drain(..) {
            let _ = advise(&self.cache.file, start, end - start, Need::Will);
        }
    }

    /// A value the read is about to copy: notes its pages to drop once done, if they lie
    /// behind the writer's mark.
    pub(crate) fn touched(&mut self, value: &[u8]) {
        let Some((start, end)) = self.behind(value) else {
            return;
        };
        match self.ranges.last_mut() {
            // With what lies between: the tree's pages the read went through.
            Some((s, e)) if *s <= start && start <= *e + DROP_GAP => *e = (*e).max(end),
            _ => self.ranges.push((start, end)),
        }
    }

    /// Unmaps and drops the ranges touched behind the window. Returns the bytes dropped.
    pub(crate) fn finish(self) -> u64 {
        let mut dropped = 0;
        for (start, end) in self.ranges {
            if self.cache.drop_range(start, end - start).is_ok() {
                dropped += end - start;
            }
        }
        dropped
    }
}

/// Finds the one read-only shared mapping of `file` in this process.
#[cfg(target_os = "linux")]
fn find_map(file: &File) -> Option<MapRegion> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata().ok()?;
    let dev = format!(
        "{:02x}:{:02x}",
        rustix::fs::major(meta.dev()),
        rustix::fs::minor(meta.dev())
    );
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let mut found = None;
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms), Some(offset), Some(device), Some(inode)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        if inode.parse::<u64>().ok() != Some(meta.ino()) || device != dev {
            continue;
        }
        // LMDB maps the whole file once, read-only and shared (no WRITEMAP here).
        if perms != "r--s" || u64::from_str_radix(offset, 16).ok() != Some(0) {
            return None;
        }
        let (lo, hi) = range.split_once('-')?;
        let (lo, hi) = (
            usize::from_str_radix(lo, 16).ok()?,
            usize::from_str_radix(hi, 16).ok()?,
        );
        if found.is_some() || hi <= lo {
            // Mapped twice: which one is this environment's is not known.
            return None;
        }
        found = Some(MapRegion {
            base: lo,
            len: hi - lo,
        });
    }
    found
}

#[cfg(not(target_os = "linux"))]
fn find_map(_file: &File) -> Option<MapRegion> {
    None
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn unmap(map: MapRegion, offset: u64, len: u64) {
    use rustix::mm::{madvise, Advice};
    let (Ok(offset), Ok(len)) = (usize::try_from(offset), usize::try_from(len)) else {
        return;
    };
    if len == 0 || offset.checked_add(len).is_none_or(|end| end > map.len) {
        return;
    }
    // SAFETY: the range lies inside LMDB's map of the data file, which stays mapped while
    // the `PageCache` (holding the environment) lives. The map is read-only and shared
    // (checked when it was found), so MADV_DONTNEED only drops this process's page-table
    // entries: the next access faults the same bytes back from the page cache or the file.
    // LMDB never rewrites a page a live read transaction can see, so no reader sees other
    // bytes than before.
    let _ = unsafe {
        madvise(
            (map.base + offset) as *mut std::ffi::c_void,
            len,
            Advice::LinuxDontNeed,
        )
    };
}

#[cfg(not(target_os = "linux"))]
fn unmap(_map: MapRegion, _offset: u64, _len: u64) {}

/// Which advice to give.
#[derive(Debug, Clone, Copy)]
enum Need {
    /// `POSIX_FADV_WILLNEED`: read it ahead.
    Will,
    /// `POSIX_FADV_DONTNEED`: drop it.
    Dont,
}

#[cfg(target_os = "linux")]
fn advise(file: &File, offset: u64, len: u64, need: Need) -> std::io::Result<()> {
    use rustix::fs::{fadvise, Advice};
    let Some(len) = std::num::NonZeroU64::new(len) else {
        return Ok(());
    };
    let advice = match need {
        Need::Will => Advice::WillNeed,
        Need::Dont => Advice::DontNeed,
    };
    fadvise(file, offset, Some(len), advice).map_err(std::io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn advise(_file: &File, _offset: u64, _len: u64, _need: Need) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A window over a plain file of `len` bytes: no LMDB, no map.
    fn cache_of(dir: &Path, len: usize, window: u64) -> PageCache {
        let path = dir.join("data.mdb");
        let mut f = File::create(&path).expect("create");
        f.write_all(&vec![7u8; len]).expect("write");
        f.sync_all().expect("sync");
        PageCache {
            file: File::open(&path).expect("open"),
            map: None,
            window,
            dropped_upto: AtomicU64::new(0),
            _env: None,
        }
    }

    fn grow(dir: &Path, len: usize) {
        let mut f = File::create(dir.join("data.mdb")).expect("create");
        f.write_all(&vec![7u8; len]).expect("write");
    }

    #[test]
    fn test_less_than_a_step_behind_the_window_is_not_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = cache_of(dir.path(), (5 << 19) - 1, 2 << 20);
        // Half a MiB lies behind the window, less than the smallest step.
        assert_eq!(CacheTrim::default().after_commit(Some(&cache)), 0);
    }

    #[test]
    fn test_what_lies_behind_is_dropped_at_once_up_to_a_step_and_only_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = cache_of(dir.path(), 40 << 20, 1 << 20);
        let mut t = CacheTrim::default();
        let mut dropped = Vec::new();
        loop {
            match t.after_commit(Some(&cache)) {
                0 => break,
                n => dropped.push(n),
            }
        }
        // 39 MiB lie behind the window: two full steps, then the rest.
        assert_eq!(dropped, vec![TRIM_STEP, TRIM_STEP, 7 << 20]);
        assert_eq!(cache.dropped_upto.load(Ordering::Relaxed), 39 << 20);
        grow(dir.path(), 40 << 20);
        assert_eq!(
            t.after_commit(Some(&cache)),
            0,
            "a file that did not grow drops nothing more"
        );
        grow(dir.path(), (40 << 20) + (3 << 19));
        assert_eq!(
            t.after_commit(Some(&cache)),
            3 << 19,
            "then what it grew by"
        );
    }

    #[test]
    fn test_a_small_window_drops_in_steps_of_its_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The smallest step is the window itself when it is under a MiB.
        let cache = cache_of(dir.path(), 2 * 65536 - 1, 65536);
        assert_eq!(CacheTrim::default().after_commit(Some(&cache)), 0);
        let cache = cache_of(dir.path(), 2 * 65536 + 100, 65536);
        assert_eq!(CacheTrim::default().after_commit(Some(&cache)), 65536);
    }

    #[test]
    fn test_lmdbs_map_of_the_file_is_found_and_a_window_of_zero_is_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = crate::LogConfig {
            map_size: 1 << 26,
            ..crate::LogConfig::default()
        };
        let view = crate::writer::open_view(dir.path(), &config, false).expect("open");
        let cache = view.cache.as_deref().expect("a window");
        assert!(cfg!(not(target_os = "linux")) || cache.unmaps());
        assert_eq!(
            cache.map.map(|m| m.len),
            Some(1 << 26).filter(|_| cache.unmaps())
        );
        drop(view);
        let off = crate::LogConfig {
            page_cache_window: 0,
            ..config
        };
        let view = crate::writer::open_view(dir.path(), &off, false).expect("reopen");
        assert!(view.cache.is_none());
    }

    #[test]
    fn test_no_window_drops_nothing() {
        assert_eq!(CacheTrim::default().after_commit(None), 0);
    }

    #[test]
    fn test_a_read_keeps_the_whole_pages_behind_the_writers_mark_merged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cache = cache_of(dir.path(), 1 << 20, 1 << 20);
        // A stand-in for the map: a buffer whose slices play the values read. Only the
        // ranges are looked at; nothing is unmapped.
        const P: usize = 4096;
        const MIB: usize = 1 << 20;
        // Allocated, never touched: only the slices' addresses are used.
        let buf = vec![0u8; 64 * MIB];
        cache.map = Some(MapRegion {
            base: buf.as_ptr() as usize,
            len: buf.len(),
        });
        cache.dropped_upto.store(60 * MIB as u64, Ordering::Relaxed);
        let mut read = cache.read();
        // The plan: pages 1 and 2 (each value after a 16-byte page header) run together,
        // page 5 is a run of its own, and the plan ends at the first value past the mark.
        assert!(read.plan(&buf[P + 16..2 * P]));
        assert!(read.plan(&buf[2 * P + 16..3 * P]));
        assert!(read.plan(&buf[5 * P + 16..6 * P]));
        assert!(!read.plan(&buf[60 * MIB..60 * MIB + P]));
        assert!(!read.plan(&[1, 2, 3]), "not in the map");
        let (p, mib) = (P as u64, MIB as u64);
        assert_eq!(read.ahead, vec![(p, 3 * p), (5 * p, 6 * p)]);
        read.read_ahead();
        assert!(read.ahead.is_empty());
        // The copies: pages 1 to 3, then 5 MiB on (within 8 MiB: one range with what lies
        // between), then 20 MiB on (a range of its own).
        read.touched(&buf[P + 16..2 * P]);
        read.touched(&buf[2 * P + 16..3 * P]);
        read.touched(&buf[3 * P + 16..3 * P + 100]);
        read.touched(&buf[5 * MIB + 16..5 * MIB + P]);
        read.touched(&buf[25 * MIB + 16..25 * MIB + P]);
        // The last page before the mark, then one past it (within the window): kept.
        read.touched(&buf[60 * MIB - P..60 * MIB]);
        read.touched(&buf[60 * MIB..60 * MIB + P]);
        read.touched(&[1, 2, 3]);
        assert_eq!(
            read.ranges,
            vec![
                (p, 5 * mib + p),
                (25 * mib, 25 * mib + p),
                (60 * mib - p, 60 * mib)
            ]
        );
    }
}
