//! The OpenAI-compatible responder against a chat-completions server on a real socket (a
//! stand-in for llama.cpp, vLLM or Ollama): the request it sends, the answers it turns into
//! responses, retries on 5xx through the worker, and a timeout on a server that never
//! answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eddy_context::conformance::sample_chat;
use eddy_context::{ContextError, Responder, Response};
use eddy_pipeline::responder::Job;
use eddy_pipeline::{OpenAiConfig, OpenAiResponder, ResponderWorker, WorkerConfig};
use serde_json::{json, Value};

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    line: String,
    headers: Vec<(String, String)>,
    body: Value,
}

fn read_request(stream: &mut TcpStream) -> Option<Seen> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Seen {
        line: line.trim_end().to_owned(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    })
}

/// Serves the scripted answers (status, body) in turn, one per connection; answers the
/// base URL and what it saw.
fn server(script: Vec<(u16, Value)>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for (status, body) in script {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            if let Some(req) = read_request(&mut stream) {
                log.lock().unwrap().push(req);
            }
            let body = body.to_string();
            let reply = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    (format!("http://{addr}/v1"), seen)
}

fn completion(text: &str) -> Value {
    json!({"id": "x", "object": "chat.completion", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    ]})
}

fn job() -> Job {
    let chat = sample_chat();
    let thread: Vec<_> = chat
        .iter()
        .filter(|m| ["a1", "a2", "a3"].contains(&m.message_id.as_str()))
        .cloned()
        .collect();
    let message = thread[2].clone();
    Job {
        seq: 7,
        topic: "user_ann".into(),
        context: eddy_context::Context {
            message_id: message.message_id.clone(),
            thread,
            background: vec![chat[1].clone()],
        },
        message,
    }
}

#[test]
fn the_request_carries_model_key_and_context_and_the_answer_becomes_a_response() {
    let (base, seen) = server(vec![(200, completion("@cid did it keep the theme too?"))]);
    let mut config = OpenAiConfig::new(base, "llama-3");
    config.api_key = Some("sk-test".into());
    let mut r = OpenAiResponder::new("Eddy", config).unwrap();
    let j = job();
    let out = r.respond(&j.message, &j.context).unwrap();
    assert_eq!(
        out,
        vec![Response::Mention {
            user: "cid".into(),
            text: "did it keep the theme too?".into()
        }]
    );
    let seen = seen.lock().unwrap();
    let req = &seen[0];
    assert_eq!(req.line, "POST /v1/chat/completions HTTP/1.1");
    assert!(req
        .headers
        .contains(&("authorization".into(), "Bearer sk-test".into())));
    assert_eq!(req.body["model"], "llama-3");
    let prompt = req.body["messages"][1]["content"].as_str().unwrap();
    // The thread, the background and the message itself are all in the prompt.
    for text in ["installer is faster", "lunch at noon", "keep your settings"] {
        assert!(prompt.contains(text), "{prompt}");
    }
    assert!(req.body["messages"][0]["content"]
        .as_str()
        .unwrap()
        .contains("Eddy"));
}

#[test]
fn server_errors_are_retried_and_client_errors_are_not() {
    let (base, seen) = server(vec![
        (503, json!({"error": "loading model"})),
        (500, json!({"error": "oops"})),
        (200, completion("REACT 🎉")),
    ]);
    let r = OpenAiResponder::new("Eddy", OpenAiConfig::new(base, "m")).unwrap();
    let w = ResponderWorker::start(
        Box::new(r),
        WorkerConfig {
            retries: 3,
            backoff_ms: 1,
            ..WorkerConfig::default()
        },
    )
    .unwrap();
    w.submit(job()).unwrap();
    let done = w.wait(Duration::from_secs(60)).unwrap();
    assert_eq!(done.outcome.unwrap(), vec![Response::Reaction("🎉".into())]);
    assert_eq!(seen.lock().unwrap().len(), 3);

    let (base, _) = server(vec![(401, json!({"error": "bad key"}))]);
    let mut r = OpenAiResponder::new("Eddy", OpenAiConfig::new(base, "m")).unwrap();
    let j = job();
    match r.respond(&j.message, &j.context) {
        Err(ContextError::Responder { message, retriable }) => {
            assert!(!retriable);
            assert!(
                message.contains("401") && message.contains("bad key"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    // An answer without choices is a clear error too.
    let (base, _) = server(vec![(200, json!({"nothing": true}))]);
    let mut r = OpenAiResponder::new("Eddy", OpenAiConfig::new(base, "m")).unwrap();
    let e = r.respond(&j.message, &j.context).unwrap_err();
    assert!(e.to_string().contains("choices"), "{e}");
}

#[test]
fn a_server_that_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = std::thread::spawn(move || {
        let conn = listener.accept();
        std::thread::sleep(Duration::from_secs(5));
        drop(conn);
    });
    let mut config = OpenAiConfig::new(format!("http://{addr}/v1"), "m");
    config.timeout_ms = 300;
    let mut r = OpenAiResponder::new("Eddy", config).unwrap();
    let j = job();
    match r.respond(&j.message, &j.context) {
        Err(ContextError::Responder { retriable, .. }) => assert!(retriable),
        other => panic!("{other:?}"),
    }
    drop(hold);
}
