//! [`MemoryBudget`]: bytes held at once, shared by every holder.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::sync::{lock, Arc, AtomicUsize, Mutex, Ordering};

/// A number of bytes that holders take ([`Permit`]s) and give back (by dropping them).
///
/// [`MemoryBudget::try_acquire`] answers at once; [`MemoryBudget::acquire`] is a future that
/// waits for room, on any executor. A request for more than the whole budget takes the whole
/// budget: it still goes through, alone. Every release wakes every waiter, which then try
/// again; no wakeup is lost, because a waiter registers first and then tries once more.
///
/// Cheap to clone: clones share the budget.
#[derive(Clone)]
pub struct MemoryBudget {
    inner: Arc<Inner>,
}

struct Inner {
    capacity: usize,
    available: AtomicUsize,
    waiters: Mutex<Waiters>,
}

/// Wakers of the futures waiting for room; `generation` counts releases, so a future polled
/// again before the next release does not register twice (it updates its slot instead, if
/// it was polled with another waker: the last poll's waker is the one to wake).
struct Waiters {
    generation: u64,
    wakers: Vec<Waker>,
}

impl fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBudget")
            .field("capacity", &self.inner.capacity)
            .field("available", &self.available())
            .finish()
    }
}

impl MemoryBudget {
    /// A budget of `capacity` bytes (at least 1).
    pub fn new(capacity: usize) -> MemoryBudget {
        let capacity = capacity.max(1);
        MemoryBudget {
            inner: Arc::new(Inner {
                capacity,
                available: AtomicUsize::new(capacity),
                waiters: Mutex::new(Waiters {
                    generation: 0,
                    wakers: Vec::new(),
                }),
            }),
        }
    }

    /// The whole budget.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Bytes not taken now.
    pub fn available(&self) -> usize {
        self.inner.available.load(Ordering::Acquire)
    }

    /// Bytes taken now.
    pub fn in_use(&self) -> usize {
        self.inner.capacity - self.available()
    }

    /// Takes `bytes` (at most the whole budget) if there is room now.
    pub fn try_acquire(&self, bytes: usize) -> Option<Permit> {
        let want = bytes.min(self.inner.capacity);
        let mut current = self.inner.available.load(Ordering::Acquire);
        loop {
            if current < want {
                return None;
            }
            match self.inner.available.compare_exchange_weak(
                current,
                current - want,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Some(Permit {
                        budget: self.clone(),
                        bytes: want,
                    })
                }
                Err(now) => current = now,
            }
        }
    }

    /// Waits until `bytes` (at most the whole budget) can be taken, and takes them.
    pub fn acquire(&self, bytes: usize) -> Acquire {
        Acquire {
            budget: self.clone(),
            bytes,
            registered: None,
        }
    }

    fn release(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        self.inner.available.fetch_add(bytes, Ordering::AcqRel);
        let wakers = {
            let mut w = lock(&self.inner.waiters);
            w.generation += 1;
            std::mem::take(&mut w.wakers)
        };
        for w in wakers {
            w.wake();
        }
    }
}

/// Bytes taken from a [`MemoryBudget`], given back when dropped.
pub struct Permit {
    budget: MemoryBudget,
    bytes: usize,
}

impl Permit {
    /// Bytes this permit holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Gives back what this permit holds beyond `bytes` (nothing if it holds no more), waking
    /// the waiters as a drop does.
    pub fn shrink_to(&mut self, bytes: usize) {
        if bytes < self.bytes {
            let extra = self.bytes - bytes;
            self.bytes = bytes;
            self.budget.release(extra);
        }
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

/// The future of [`MemoryBudget::acquire`].
pub struct Acquire {
    budget: MemoryBudget,
    bytes: usize,
    /// The release generation this future's waker was registered in, and its slot.
    registered: Option<(u64, usize)>,
}

impl fmt::Debug for Acquire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl Future for Acquire {
    type Output = Permit;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Permit> {
        let this = self.get_mut();
        if let Some(p) = this.budget.try_acquire(this.bytes) {
            return Poll::Ready(p);
        }
        {
            let mut w = lock(&this.budget.inner.waiters);
            let generation = w.generation;
            match this.registered {
                Some((g, slot)) if g == generation => {
                    if let Some(old) = w.wakers.get_mut(slot) {
                        if !old.will_wake(cx.waker()) {
                            old.clone_from(cx.waker());
                        }
                    }
                }
                _ => {
                    w.wakers.push(cx.waker().clone());
                    this.registered = Some((generation, w.wakers.len() - 1));
                }
            }
        }
        // A release between the first try and the registration is seen here.
        match this.budget.try_acquire(this.bytes) {
            Some(p) => Poll::Ready(p),
            None => Poll::Pending,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::task::Wake;

    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn test_accounting_and_the_oversized_request() {
        let b = MemoryBudget::new(100);
        let p = b.try_acquire(60).unwrap();
        assert_eq!((b.available(), b.in_use()), (40, 60));
        assert!(b.try_acquire(41).is_none());
        let q = b.try_acquire(40).unwrap();
        drop(p);
        assert_eq!(b.available(), 60);
        drop(q);
        // More than the whole budget takes the whole budget.
        let big = b.try_acquire(1 << 30).unwrap();
        assert_eq!((big.bytes(), b.available()), (100, 0));
        drop(big);
        assert_eq!(b.available(), 100);
    }

    /// A future polled again with another waker (moved into a `FuturesOrdered` after a first
    /// poll by its task, say) is woken through the newer one.
    #[test]
    fn test_a_waiter_polled_with_a_new_waker_is_woken_through_it() {
        let b = MemoryBudget::new(10);
        let held = b.try_acquire(10).unwrap();
        let (first, second) = (
            std::sync::Arc::new(Flag(AtomicBool::new(false))),
            std::sync::Arc::new(Flag(AtomicBool::new(false))),
        );
        let mut fut = b.acquire(5);
        let w1 = Waker::from(first.clone());
        assert!(Pin::new(&mut fut)
            .poll(&mut Context::from_waker(&w1))
            .is_pending());
        let w2 = Waker::from(second.clone());
        assert!(Pin::new(&mut fut)
            .poll(&mut Context::from_waker(&w2))
            .is_pending());
        assert_eq!(lock(&b.inner.waiters).wakers.len(), 1);
        drop(held);
        assert!(second.0.load(std::sync::atomic::Ordering::SeqCst));
        assert!(!first.0.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[test]
    fn test_a_shrunk_permit_gives_back_the_rest_and_wakes_a_waiter() {
        let b = MemoryBudget::new(10);
        let mut held = b.try_acquire(10).unwrap();
        let flag = std::sync::Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut fut = b.acquire(6);
        assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
        held.shrink_to(4);
        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!((held.bytes(), b.available()), (4, 6));
        // Growing is not shrinking: nothing changes.
        held.shrink_to(8);
        assert_eq!((held.bytes(), b.available()), (4, 6));
        let got = match Pin::new(&mut fut).poll(&mut cx) {
            Poll::Ready(p) => p,
            Poll::Pending => panic!("room was given back"),
        };
        assert_eq!((got.bytes(), b.available()), (6, 0));
        drop(held);
        assert_eq!(b.available(), 4);
    }

    #[test]
    fn test_a_waiter_is_woken_by_a_release_and_registers_once() {
        let b = MemoryBudget::new(10);
        let held = b.try_acquire(8).unwrap();
        let flag = std::sync::Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut fut = b.acquire(5);
        assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
        assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
        assert_eq!(
            lock(&b.inner.waiters).wakers.len(),
            1,
            "polled twice, registered once"
        );
        drop(held);
        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst));
        match Pin::new(&mut fut).poll(&mut cx) {
            Poll::Ready(p) => assert_eq!(p.bytes(), 5),
            Poll::Pending => panic!("room was released"),
        }
    }
}
