//! `GET /context/{message_id}` over a real socket, answered by a real context consumer that
//! reads chat messages published through `POST /events`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{assert_error, Server};
use eddy_context::conformance::sample_chat;
use eddy_context::{stable_partition, Registry};
use eddy_pipeline::{ContextConfig, RunningContext, Subscription};
use serde_json::{json, Value};

#[test]
fn context_of_an_observed_message_with_its_budget() {
    let mut s = Server::start();
    // Without a context consumer the route says so.
    assert_error(&s.get("/context/a1"), 503, "unavailable");

    s.create_topic("chatroom_r1", 3);
    s.create_topic("chatroom_r2", 3);
    for m in sample_chat() {
        let topic = format!("chatroom_{}", m.chat_id);
        s.post_expect(
            "/events",
            json!({"topic": topic, "partition": stable_partition(&m.context_id, 3),
                   "value": serde_json::to_value(&m).unwrap()}),
            200,
        );
    }
    let mut registry = Registry::new();
    eddy_strategy_reply_chain::register(&mut registry).unwrap();
    let running = RunningContext::spawn(
        s.eddy.as_ref().unwrap().cluster(),
        registry.build("reply-chain", Value::Null).unwrap(),
        None,
        ContextConfig::new(
            s.dir.path().join("context"),
            Subscription::Pattern("chatroom_.*".into()),
        ),
    )
    .unwrap();
    s.attach_context(Arc::new(running.handle()));

    let deadline = Instant::now() + Duration::from_secs(60);
    let c = loop {
        let r = s.get("/context/a5");
        if r.status == 200 {
            break r.json().unwrap();
        }
        assert_error(&r, 404, "not_found");
        assert!(Instant::now() < deadline, "a5 never observed");
        std::thread::sleep(Duration::from_millis(50));
    };
    let thread: Vec<&str> = c["thread"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(thread, ["a1", "a2", "a3", "a4", "a5"]);
    assert_eq!(c["thread"][1]["parent_message_id"], "a1");
    assert!(c["background"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["chat_id"] == "r1"));
    // A smaller budget keeps the message and the end of its thread.
    let small = s.get_ok("/context/a5?max_messages=2");
    let ids: Vec<&str> = small["thread"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a4", "a5"]);
    assert_eq!(small["background"].as_array().unwrap().len(), 0);

    assert_error(&s.get("/context/nope"), 404, "not_found");
    assert_error(&s.get("/context/a5?max_messages=0"), 400, "invalid_request");
    assert_error(&s.get("/context/a5?max_chars=x"), 400, "invalid_request");
    assert_error(&s.get("/context/a5?budget=3"), 400, "invalid_request");
    running.stop().unwrap();
}
