//! Every interleaving (within loom's bounds) of the shared-state pieces. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p eddy-sync --release --test loom`.
#![cfg(loom)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use eddy_sync::MemoryBudget;
use loom::future::block_on;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

/// Explores every interleaving with up to `LOOM_MAX_PREEMPTIONS` (default here 3) forced
/// switches: the bound that keeps these models to seconds.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(f);
}

/// Holders never take more than the budget together, and every waiter gets its bytes in
/// the end (a lost wakeup would leave a thread blocked: loom reports it as a deadlock).
#[test]
fn budget_never_overcommits_and_every_waiter_finishes() {
    model(|| {
        let budget = MemoryBudget::new(2);
        let held = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = [2usize]
            .into_iter()
            .map(|n| {
                let (budget, held) = (budget.clone(), held.clone());
                thread::spawn(move || {
                    let permit = block_on(budget.acquire(n));
                    let now = held.fetch_add(n, Ordering::SeqCst) + n;
                    assert!(now <= 2, "{now} bytes held of 2");
                    held.fetch_sub(n, Ordering::SeqCst);
                    drop(permit);
                })
            })
            .collect();
        let permit = block_on(budget.acquire(1));
        let now = held.fetch_add(1, Ordering::SeqCst) + 1;
        assert!(now <= 2, "{now} bytes held of 2");
        held.fetch_sub(1, Ordering::SeqCst);
        drop(permit);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(budget.available(), 2);
    });
}

/// A waiter that finds no room while the holder is releasing it is not left asleep.
#[test]
fn a_release_racing_a_waiter_wakes_it() {
    model(|| {
        let budget = MemoryBudget::new(1);
        let permit = budget.try_acquire(1).unwrap();
        let waiter = {
            let budget = budget.clone();
            thread::spawn(move || block_on(budget.acquire(1)).bytes())
        };
        drop(permit);
        assert_eq!(waiter.join().unwrap(), 1);
        assert_eq!(budget.available(), 1);
    });
}

/// Two takers racing for more than half: exactly one gets it.
#[test]
fn try_acquire_is_exact() {
    model(|| {
        let budget = MemoryBudget::new(3);
        let other = {
            let budget = budget.clone();
            thread::spawn(move || budget.try_acquire(2).map(|p| p.bytes()))
        };
        let mine = budget.try_acquire(2);
        let theirs = other.join().unwrap();
        // Their permit is dropped already when they return; count who got one.
        assert!(mine.is_some() || theirs.is_some());
        if let (Some(_), Some(_)) = (&mine, theirs) {
            // Possible only if theirs was given back before mine was taken.
            assert_eq!(budget.available(), 1);
        }
        drop(mine);
        assert_eq!(budget.available(), 3);
    });
}

/// A holder that shrinks its permit while another waits for the part it gives back: the
/// waiter gets it, and the two never hold more than the budget together.
#[test]
fn a_shrink_racing_a_waiter_wakes_it() {
    model(|| {
        let budget = MemoryBudget::new(3);
        let mut permit = budget.try_acquire(3).unwrap();
        let waiter = {
            let budget = budget.clone();
            thread::spawn(move || block_on(budget.acquire(2)).bytes())
        };
        permit.shrink_to(1);
        assert!(budget.available() <= 2);
        assert_eq!(waiter.join().unwrap(), 2);
        drop(permit);
        assert_eq!(budget.available(), 3);
    });
}

/// A value set while another thread grows the table is not lost by the growth, and of two
/// racing `set_if_absent`s exactly one sets its value. (A `set` racing a `set_if_absent` is
/// not modelled: loom gives impossible histories for a store racing a read-modify-write,
/// tokio-rs/loom#254.)
#[test]
fn table_growth_keeps_values_set_meanwhile() {
    use eddy_sync::ValueTable;
    model(|| {
        let t = Arc::new(ValueTable::default());
        t.set(1, 10);
        let grower = {
            let t = t.clone();
            thread::spawn(move || {
                t.set(5, 7); // a second chunk (4 values each under loom)
            })
        };
        let racer = {
            let t = t.clone();
            thread::spawn(move || t.set_if_absent(2, 20))
        };
        let mine = t.set_if_absent(2, 30);
        grower.join().unwrap();
        let theirs = racer.join().unwrap();
        assert_eq!(t.get(1), Some(10));
        assert_eq!(t.get(5), Some(7));
        assert!(mine != theirs, "one set_if_absent wins");
        assert_eq!(t.get(2), Some(if mine { 30 } else { 20 }));
    });
}
