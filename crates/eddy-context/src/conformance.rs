//! The conformance suite every strategy runs in a few lines:
//!
//! ```
//! # use eddy_context::{conformance, ContextStrategy, strategy::*, ChatMessage};
//! # #[derive(Debug)]
//! # struct Mine(History);
//! # impl ContextStrategy for Mine {
//! #     fn name(&self) -> &str { "mine" }
//! #     fn fresh(&self) -> Box<dyn ContextStrategy> { Box::new(Mine(History::new())) }
//! #     fn observe(&mut self, m: &ChatMessage) -> Assignment {
//! #         self.0.push(m);
//! #         Assignment { parent: m.parent_message_id.clone(), context_id: m.context_id.clone() }
//! #     }
//! #     fn context_for(&self, id: &str, b: &Budget) -> Option<Context> {
//! #         let seq = self.0.seq(id)?;
//! #         Some(self.0.fit(seq, &self.0.explicit_chain(seq), &[], b))
//! #     }
//! # }
//! conformance::check(|| Box::new(Mine(History::new())));
//! ```
//!
//! It checks, over a group chat with interleaved bubbles, replies, reactions, orphans and a
//! second room: the thread is in order and ends at the message; nothing comes from a message
//! observed later, even when asked after later messages arrived; the budget holds; two
//! instances fed the same messages answer the same, and so does `fresh()` of a used one; an
//! unknown id gets `None`; the first
//! message of an empty history has itself as its thread. It panics with the broken rule.

use crate::message::{ChatMessage, MessageKind};
use crate::strategy::{Budget, ContextStrategy};

/// A small group chat: two rooms, interleaved bubbles, a reaction, an orphan, mentions.
pub fn sample_chat() -> Vec<ChatMessage> {
    let mut out = Vec::new();
    let mut add = |id: &str, parent: Option<&str>, ctx: &str, room: &str, who: &str, text: &str| {
        let kind = match (parent, text) {
            (Some(_), "👍") => MessageKind::Reaction,
            (Some(_), _) => MessageKind::Reply,
            (None, _) => MessageKind::Message,
        };
        out.push(ChatMessage {
            message_id: id.into(),
            content: if kind == MessageKind::Reaction {
                String::new()
            } else {
                text.into()
            },
            context_id: ctx.into(),
            parent_message_id: parent.map(Into::into),
            thread_id: ctx.into(),
            partition_hint: None,
            sender_id: who.into(),
            sender_name: who.into(),
            chat_id: room.into(),
            timestamp: 1_700_000_000_000 + out.len() as i64 * 1_000,
            mentions: text
                .split_whitespace()
                .filter_map(|w| w.strip_prefix('@'))
                .map(Into::into)
                .collect(),
            kind,
            emoji: (kind == MessageKind::Reaction).then(|| "👍".into()),
        });
    };
    add(
        "a1",
        None,
        "A",
        "r1",
        "ann",
        "has anyone tried the new release?",
    );
    add("b1", None, "B", "r1", "bob", "lunch at noon anyone?");
    add(
        "a2",
        Some("a1"),
        "A",
        "r1",
        "cid",
        "@ann yes, the installer is faster",
    );
    add("b2", Some("b1"), "B", "r1", "dan", "@bob count me in");
    add("x1", None, "X", "r2", "eve", "a different room entirely");
    add(
        "a3",
        Some("a2"),
        "A",
        "r1",
        "ann",
        "@cid did the upgrade keep your settings?",
    );
    add("b3", Some("b2"), "B", "r1", "bob", "👍");
    add(
        "o1",
        Some("never-seen"),
        "O",
        "r1",
        "fay",
        "replying to something we never saw",
    );
    add(
        "a4",
        Some("a3"),
        "A",
        "r1",
        "cid",
        "@ann it did, all of them",
    );
    add("x2", Some("x1"), "X", "r2", "gus", "@eve agreed");
    add("c1", None, "C", "r1", "hal", "unrelated: is the wifi down?");
    add(
        "a5",
        Some("a4"),
        "A",
        "r1",
        "ann",
        &"thanks, that is a long answer ".repeat(10),
    );
    out
}

fn assert_context_rules(
    strategy: &dyn ContextStrategy,
    order: &[ChatMessage],
    seq: usize,
    budget: &Budget,
) {
    let name = strategy.name();
    let m = &order[seq];
    let ctx = strategy
        .context_for(&m.message_id, budget)
        .unwrap_or_else(|| panic!("{name}: no context for observed message {}", m.message_id));
    let pos = |id: &str| {
        order
            .iter()
            .position(|o| o.message_id == id)
            .unwrap_or_else(|| {
                panic!(
                    "{name}: context of {} names unknown message {id}",
                    m.message_id
                )
            })
    };
    assert_eq!(
        ctx.message_id, m.message_id,
        "{name}: context is for another message"
    );
    let last = ctx
        .thread
        .last()
        .unwrap_or_else(|| panic!("{name}: empty thread for {}", m.message_id));
    assert_eq!(
        last.message_id, m.message_id,
        "{name}: the thread of {} does not end at it",
        m.message_id
    );
    let in_order = |part: &str, messages: &[ChatMessage]| -> Vec<usize> {
        let at: Vec<usize> = messages.iter().map(|x| pos(&x.message_id)).collect();
        assert!(
            at.windows(2).all(|w| w[0] < w[1]),
            "{name}: the {part} of {} is not in order: {at:?}",
            m.message_id
        );
        at
    };
    let thread = in_order("thread", &ctx.thread);
    let background = in_order("background", &ctx.background);
    for p in thread.iter().chain(&background) {
        assert!(
            *p <= seq,
            "{name}: the context of {} uses a later message ({})",
            m.message_id,
            order[*p].message_id
        );
    }
    assert!(
        !background.iter().any(|b| thread.contains(b)),
        "{name}: a message of {}'s thread is also in its background",
        m.message_id
    );
    let count = ctx.thread.len() + ctx.background.len();
    assert!(
        count <= budget.max_messages.max(1),
        "{name}: {count} messages over a budget of {}",
        budget.max_messages
    );
    let chars: usize = ctx
        .thread
        .iter()
        .chain(&ctx.background)
        .filter(|x| x.message_id != m.message_id)
        .map(|x| x.content.chars().count())
        .sum();
    let own = m.content.chars().count();
    assert!(
        chars + own <= budget.max_chars.max(own),
        "{name}: {} characters over a budget of {}",
        chars + own,
        budget.max_chars
    );
}

/// Runs the suite against fresh strategies from `make`. Panics with the broken rule.
pub fn check(make: impl Fn() -> Box<dyn ContextStrategy>) {
    let chat = sample_chat();
    let budgets = [
        Budget::default(),
        Budget {
            max_messages: 3,
            max_chars: 10_000,
        },
        Budget {
            max_messages: 50,
            max_chars: 60,
        },
        Budget {
            max_messages: 1,
            max_chars: 0,
        },
    ];

    // Empty history: the first message is its own thread; unknown ids get nothing.
    let mut s = make();
    assert!(
        s.context_for("nothing", &Budget::default()).is_none(),
        "{}: context for an unknown id",
        s.name()
    );
    s.observe(&chat[0]);
    let ctx = s
        .context_for(&chat[0].message_id, &Budget::default())
        .unwrap_or_else(|| panic!("{}: no context for the first message", s.name()));
    assert_eq!(ctx.thread.len(), 1, "{}: first message's thread", s.name());
    assert!(
        ctx.background.is_empty(),
        "{}: background for the first message",
        s.name()
    );

    // Asked as each message arrives, and again once everything has arrived.
    let mut s = make();
    for (i, m) in chat.iter().enumerate() {
        s.observe(m);
        for b in &budgets {
            assert_context_rules(s.as_ref(), &chat, i, b);
        }
    }
    for i in 0..chat.len() {
        for b in &budgets {
            assert_context_rules(s.as_ref(), &chat, i, b);
        }
    }

    // Deterministic: a second instance fed the same messages answers the same.
    let mut a = make();
    let mut b = make();
    assert_same_answers(a.as_mut(), b.as_mut(), &chat, &budgets, "a second instance");

    // `fresh()` of a used instance has observed nothing, and answers as a new one does.
    let mut f = a.fresh();
    assert_eq!(f.name(), a.name(), "{}: fresh() changed the name", a.name());
    assert!(
        f.context_for(&chat[0].message_id, &Budget::default())
            .is_none(),
        "{}: fresh() remembers messages",
        a.name()
    );
    let mut c = make();
    assert_same_answers(
        f.as_mut(),
        c.as_mut(),
        &chat,
        &budgets,
        "fresh() of a used one",
    );
}

/// Feeds `chat` to both strategies; their assignments, and then every context under every
/// budget, must be equal (`what` names `a` in the failure).
fn assert_same_answers(
    a: &mut dyn ContextStrategy,
    b: &mut dyn ContextStrategy,
    chat: &[ChatMessage],
    budgets: &[Budget],
    what: &str,
) {
    for m in chat {
        assert_eq!(
            a.observe(m),
            b.observe(m),
            "{}: assignments of {what} differ from a new instance's",
            b.name()
        );
    }
    for m in chat {
        for budget in budgets {
            assert_eq!(
                a.context_for(&m.message_id, budget),
                b.context_for(&m.message_id, budget),
                "{}: contexts of {what} differ from a new instance's",
                b.name()
            );
        }
    }
}
