//! [`LazyHugeAlloc`]: a global allocator that survives the absurd allocations a hostile Kafka
//! frame can cause in `kafka-protocol` 0.18.
//!
//! That crate's array decoders reserve `Vec::with_capacity(count)` with the element count read
//! off the wire before decoding any element (upstream: kafka-protocol-rs pull requests #152,
//! #161 and #200, open). A frame of a few bytes claiming 2^31 topics asks for ~150 GB; the
//! system allocator refuses and Rust aborts the process. This allocator serves any request
//! of 1 GiB or more with an anonymous `MAP_NORESERVE` mapping instead: address space only,
//! no memory until pages are touched. The bogus vector is never filled (the decoder fails at
//! the end of the frame a few elements in) and is unmapped at once, so the connection is
//! closed and the process lives on. Everything smaller goes to the system allocator.
//!
//! A real allocation of that size behaves as with Linux's default overcommit: pages are
//! backed as they are written. Install it in every process that runs a Kafka listener:
//!
//! ```
//! #[global_allocator]
//! static ALLOC: eddy_kafka::LazyHugeAlloc = eddy_kafka::LazyHugeAlloc;
//! # fn main() {}
//! ```
//! Remove it once `kafka-protocol` bounds its reservations by the bytes left in the frame.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations from this size up are lazy mappings.
pub const HUGE: usize = 1 << 30;

/// The page size mmap aligns to (at least; Linux's smallest).
const PAGE: usize = 4096;

/// The system allocator, with lazy mappings for allocations of [`HUGE`] bytes or more.
#[derive(Debug, Clone, Copy, Default)]
pub struct LazyHugeAlloc;

fn lazy(layout: Layout) -> bool {
    layout.size() >= HUGE && layout.align() <= PAGE
}

// SAFETY: every pointer handed out is either the system allocator's (for layouts it served)
// or a fresh private anonymous mapping of at least `layout.size()` bytes, page-aligned
// (so aligned for any `align <= PAGE`), zero-filled, and unmapped only by `dealloc` with the
// same layout, which routes the same way because the routing depends on the layout alone.
unsafe impl GlobalAlloc for LazyHugeAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !lazy(layout) {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { System.alloc(layout) };
        }
        // SAFETY: an anonymous mapping with no address hint has no preconditions.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                layout.size(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            std::ptr::null_mut()
        } else {
            p.cast()
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !lazy(layout) {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { System.alloc_zeroed(layout) };
        }
        // SAFETY: as `alloc`; anonymous mappings are zero-filled.
        unsafe { self.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !lazy(layout) {
            // SAFETY: `ptr` came from `System` for this layout (see `alloc`).
            return unsafe { System.dealloc(ptr, layout) };
        }
        // SAFETY: `ptr` is a mapping of `layout.size()` bytes made by `alloc`.
        unsafe {
            libc::munmap(ptr.cast(), layout.size());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_a_huge_request_is_a_lazy_mapping_and_small_ones_are_the_systems() {
        let a = LazyHugeAlloc;
        // 1 TiB: far beyond this machine's memory, yet only address space.
        let layout = Layout::from_size_align(1 << 40, 8).unwrap_or_else(|_| unreachable!());
        // SAFETY: non-zero size; freed below with the same layout.
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            // Touch a few pages: they read as zero and can be written.
            for i in [0usize, 4096, (1 << 40) - 1] {
                assert_eq!(*p.add(i), 0);
                *p.add(i) = 7;
            }
            a.dealloc(p, layout);
        }
        let small = Layout::from_size_align(64, 8).unwrap_or_else(|_| unreachable!());
        // SAFETY: as above.
        unsafe {
            let p = a.alloc_zeroed(small);
            assert!(!p.is_null() && *p == 0);
            a.dealloc(p, small);
        }
    }
}
