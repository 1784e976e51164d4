//! Context bubbles through a running `eddy serve`: an unmodified Kafka client (kcat) writes
//! a group chat as JSON to `user_*` topics, the server's context consumer assembles each
//! message's thread (`GET /context/{id}`), and the offline responder's consumer responses
//! come back on `user_eddy-bot`, readable by kcat.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{context_thread, kcat, serve_with, stop};
use eddy_context::conformance::sample_chat;
use eddy_context::{stable_partition, ChatMessage};
use eddy_http::client::Client;

#[test]
fn a_chat_written_by_kcat_gets_threads_and_consumer_responses() {
    let dir = tempfile::tempdir().unwrap();
    let (child, boot, http) = serve_with(
        dir.path(),
        &[
            "--context-strategy",
            "reply-chain",
            "--responder",
            "offline",
        ],
    );
    let http_addr = http.clone();
    let api = Client::new(http, Duration::from_secs(30));
    let chat = sample_chat();
    for user in ["ann", "bob", "cid", "dan", "eve", "fay", "gus", "hal"] {
        let r = api
            .request(
                "POST",
                "/topics",
                Some(&serde_json::json!({"name": format!("user_{user}"), "partitions": 10})),
            )
            .unwrap();
        assert_eq!(r.status, 201);
    }
    for m in &chat {
        // One message per kcat call, at the partition of its bubble.
        let partition = stable_partition(&m.context_id, 10).to_string();
        let line = String::from_utf8(m.to_json().unwrap()).unwrap() + "\n";
        kcat(
            &boot,
            &[
                "-P",
                "-t",
                &format!("user_{}", m.sender_id),
                "-p",
                &partition,
            ],
            Some(&line),
        );
    }
    assert_eq!(
        context_thread(&http_addr, "a5"),
        ["a1", "a2", "a3", "a4", "a5"]
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    // The responder made its topic with its first answer.
    while api
        .request("GET", "/topics/user_eddy-bot", None)
        .unwrap()
        .status
        != 200
    {
        assert!(Instant::now() < deadline, "user_eddy-bot never created");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The responses, read by kcat: a 👍 to a5's thanks, in a5's bubble, and replies to the
    // questions.
    let responses: Vec<ChatMessage> = loop {
        let out = kcat(
            &boot,
            &["-C", "-t", "user_eddy-bot", "-o", "beginning", "-e", "-q"],
            None,
        );
        let got: Vec<ChatMessage> = out
            .lines()
            .map(|l| ChatMessage::decode(l.as_bytes()).unwrap())
            .collect();
        if got.iter().any(|m| m.message_id == "eddy-bot-a5-0") {
            break got;
        }
        assert!(Instant::now() < deadline, "no response to a5: {got:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let thanks = responses
        .iter()
        .find(|m| m.message_id == "eddy-bot-a5-0")
        .unwrap();
    assert_eq!(thanks.emoji.as_deref(), Some("👍"));
    assert_eq!(thanks.context_id, "A");
    assert_eq!(thanks.parent_message_id.as_deref(), Some("a5"));
    assert!(responses
        .iter()
        .any(|m| m.parent_message_id.as_deref() == Some("c1")));
    stop(child);
}
