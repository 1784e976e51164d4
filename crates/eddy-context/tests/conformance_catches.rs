//! The conformance suite fails strategies that break its rules (a suite that passes
//! everything proves nothing).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use eddy_context::{
    conformance, Assignment, Budget, ChatMessage, Context, ContextError, ContextStrategy, History,
    Registry,
};

/// Peeks at the future: every observed message is background.
#[derive(Debug, Default)]
struct Peeking(History);

impl ContextStrategy for Peeking {
    fn name(&self) -> &str {
        "peeking"
    }
    fn fresh(&self) -> Box<dyn ContextStrategy> {
        Box::new(Peeking::default())
    }
    fn observe(&mut self, m: &ChatMessage) -> Assignment {
        self.0.push(m);
        Assignment {
            parent: None,
            context_id: m.context_id.clone(),
        }
    }
    fn context_for(&self, id: &str, budget: &Budget) -> Option<Context> {
        let seq = self.0.seq(id)?;
        // Within the budget, but from the latest messages down, whenever they came.
        let (mut count, mut chars) = (1, self.0.at(seq)?.content.chars().count());
        let mut all: Vec<ChatMessage> = Vec::new();
        for s in (0..self.0.len()).rev().filter(|&s| s != seq) {
            let m = self.0.at(s)?;
            let len = m.content.chars().count();
            if count + 1 > budget.max_messages || chars + len > budget.max_chars {
                break;
            }
            count += 1;
            chars += len;
            all.insert(0, m.clone());
        }
        Some(Context {
            message_id: id.into(),
            thread: vec![self.0.at(seq)?.clone()],
            background: all,
        })
    }
}

/// Ignores the budget.
#[derive(Debug, Default)]
struct Greedy(History);

impl ContextStrategy for Greedy {
    fn name(&self) -> &str {
        "greedy"
    }
    fn fresh(&self) -> Box<dyn ContextStrategy> {
        Box::new(Greedy::default())
    }
    fn observe(&mut self, m: &ChatMessage) -> Assignment {
        self.0.push(m);
        Assignment {
            parent: None,
            context_id: m.context_id.clone(),
        }
    }
    fn context_for(&self, id: &str, _: &Budget) -> Option<Context> {
        let seq = self.0.seq(id)?;
        let thread: Vec<ChatMessage> = (0..=seq).filter_map(|s| self.0.at(s).cloned()).collect();
        Some(Context {
            message_id: id.into(),
            thread,
            background: vec![],
        })
    }
}

#[test]
#[should_panic(expected = "uses a later message")]
fn a_strategy_using_later_messages_fails() {
    conformance::check(|| Box::new(Peeking::default()));
}

#[test]
#[should_panic(expected = "over a budget")]
fn a_strategy_ignoring_the_budget_fails() {
    conformance::check(|| Box::new(Greedy::default()));
}

#[test]
fn the_registry_refuses_duplicates_and_unknown_names() {
    let mut r = Registry::new();
    r.register("greedy", |(): ()| Box::new(Greedy::default()))
        .unwrap();
    assert!(matches!(
        r.register("greedy", |(): ()| Box::new(Greedy::default())),
        Err(ContextError::Duplicate(_))
    ));
    let e = r.build("peeking", serde_json::Value::Null).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown context strategy \"peeking\"; known: greedy"
    );
}
