//! The responder worker: a model (any [`Responder`]) on its own thread behind a bounded
//! queue, so that a slow or failing model never blocks the context consumer. Each job is
//! retried with exponential backoff while its error is retriable; after `failure_threshold`
//! failed jobs in a row the circuit opens and jobs fail at once for `cooldown`. A full queue
//! refuses the job (the consumer counts it as dropped and goes on).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use eddy_context::{ChatMessage, Context, ContextError, Responder, Response};
use serde::Deserialize;

use crate::error::PipelineError;

/// How the worker treats its model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Jobs that may wait (64).
    pub queue: usize,
    /// Tries after the first one, for retriable errors (2).
    pub retries: u32,
    /// The first retry's wait, doubled each time (200 ms).
    pub backoff_ms: u64,
    /// Failed jobs in a row that open the circuit (5).
    pub failure_threshold: u32,
    /// How long an open circuit fails jobs at once (30 s).
    pub cooldown_ms: u64,
}

impl Default for WorkerConfig {
    fn default() -> WorkerConfig {
        WorkerConfig {
            queue: 64,
            retries: 2,
            backoff_ms: 200,
            failure_threshold: 5,
            cooldown_ms: 30_000,
        }
    }
}

/// A message to answer, with its context.
#[derive(Debug)]
pub struct Job {
    /// The message's position in the consumer's state.
    pub seq: u64,
    /// The topic it came from.
    pub topic: String,
    /// The message.
    pub message: ChatMessage,
    /// Its context.
    pub context: Context,
}

/// A finished job.
#[derive(Debug)]
pub struct Done {
    /// The job's message position.
    pub seq: u64,
    /// The topic it came from.
    pub topic: String,
    /// The message answered.
    pub message: ChatMessage,
    /// The answers, or why there are none.
    pub outcome: Result<Vec<Response>, ContextError>,
    /// Time spent, retries included.
    pub took: Duration,
}

/// The worker. Dropping it ends its thread once the current job is done.
#[derive(Debug)]
pub struct ResponderWorker {
    name: String,
    tx: Option<SyncSender<Job>>,
    rx: Receiver<Done>,
    queued: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

struct Circuit {
    failures: u32,
    open_until: Option<Instant>,
}

fn answer(
    responder: &mut dyn Responder,
    job: &Job,
    config: &WorkerConfig,
    circuit: &mut Circuit,
) -> Result<Vec<Response>, ContextError> {
    if let Some(until) = circuit.open_until {
        if Instant::now() < until {
            return Err(ContextError::Responder {
                message: "circuit open after repeated failures".into(),
                retriable: true,
            });
        }
        circuit.open_until = None;
    }
    let mut attempt = 0u32;
    let result = loop {
        match responder.respond(&job.message, &job.context) {
            Err(ContextError::Responder {
                retriable: true, ..
            }) if attempt < config.retries => {
                let wait = config.backoff_ms.saturating_mul(1u64 << attempt.min(16));
                std::thread::sleep(Duration::from_millis(wait));
                attempt += 1;
            }
            other => break other,
        }
    };
    match &result {
        Ok(_) => circuit.failures = 0,
        Err(_) => {
            circuit.failures += 1;
            if circuit.failures >= config.failure_threshold {
                circuit.failures = 0;
                circuit.open_until =
                    Some(Instant::now() + Duration::from_millis(config.cooldown_ms));
            }
        }
    }
    result
}

impl ResponderWorker {
    /// Starts `responder` on its own thread.
    pub fn start(
        mut responder: Box<dyn Responder>,
        config: WorkerConfig,
    ) -> Result<ResponderWorker, PipelineError> {
        let name = responder.name().to_owned();
        let (tx, jobs) = mpsc::sync_channel::<Job>(config.queue.max(1));
        let (done_tx, rx) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let q = queued.clone();
        let thread = std::thread::Builder::new()
            .name("eddy-responder".into())
            .spawn(move || {
                let mut circuit = Circuit {
                    failures: 0,
                    open_until: None,
                };
                while let Ok(job) = jobs.recv() {
                    q.fetch_sub(1, Ordering::Relaxed);
                    let started = Instant::now();
                    let outcome = answer(responder.as_mut(), &job, &config, &mut circuit);
                    let done = Done {
                        seq: job.seq,
                        topic: job.topic,
                        message: job.message,
                        outcome,
                        took: started.elapsed(),
                    };
                    if done_tx.send(done).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| PipelineError::Stopped(format!("cannot start the responder: {e}")))?;
        Ok(ResponderWorker {
            name,
            tx: Some(tx),
            rx,
            queued,
            thread: Some(thread),
        })
    }

    /// The responder's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Jobs waiting.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Queues `job`; gives it back if the queue is full (or the worker ended).
    pub fn submit(&self, job: Job) -> Result<(), Box<Job>> {
        let Some(tx) = &self.tx else {
            return Err(Box::new(job));
        };
        self.queued.fetch_add(1, Ordering::Relaxed);
        match tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job)) | Err(TrySendError::Disconnected(job)) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                Err(Box::new(job))
            }
        }
    }

    /// Jobs finished since the last call.
    pub fn finished(&self) -> Vec<Done> {
        self.rx.try_iter().collect()
    }

    /// Waits up to `timeout` for the next finished job.
    pub fn wait(&self, timeout: Duration) -> Option<Done> {
        self.rx.recv_timeout(timeout).ok()
    }
}

impl Drop for ResponderWorker {
    fn drop(&mut self) {
        self.tx = None;
        // A model call may be in flight; do not wait for it.
        drop(self.thread.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_context::conformance::sample_chat;

    #[derive(Debug)]
    struct Flaky {
        fail_first: u32,
        calls: u32,
        delay: Duration,
    }

    impl Responder for Flaky {
        fn name(&self) -> &str {
            "flaky"
        }
        fn respond(&mut self, _: &ChatMessage, _: &Context) -> Result<Vec<Response>, ContextError> {
            self.calls += 1;
            std::thread::sleep(self.delay);
            if self.calls <= self.fail_first {
                return Err(ContextError::Responder {
                    message: format!("call {} fails", self.calls),
                    retriable: true,
                });
            }
            Ok(vec![Response::Reply(format!("call {}", self.calls))])
        }
    }

    fn job(seq: u64) -> Job {
        let m = sample_chat()[0].clone();
        Job {
            seq,
            topic: "t".into(),
            context: Context {
                message_id: m.message_id.clone(),
                thread: vec![m.clone()],
                background: vec![],
            },
            message: m,
        }
    }

    fn quick() -> WorkerConfig {
        WorkerConfig {
            queue: 2,
            retries: 2,
            backoff_ms: 1,
            failure_threshold: 2,
            cooldown_ms: 60_000,
        }
    }

    #[test]
    fn retriable_failures_are_retried() {
        let r = Flaky {
            fail_first: 2,
            calls: 0,
            delay: Duration::ZERO,
        };
        let w = ResponderWorker::start(Box::new(r), quick()).unwrap();
        w.submit(job(1)).unwrap();
        let done = w.wait(Duration::from_secs(10)).unwrap();
        assert_eq!(
            done.outcome.unwrap(),
            vec![Response::Reply("call 3".into())]
        );
    }

    #[test]
    fn repeated_failures_open_the_circuit() {
        let r = Flaky {
            fail_first: u32::MAX,
            calls: 0,
            delay: Duration::ZERO,
        };
        let w = ResponderWorker::start(Box::new(r), quick()).unwrap();
        for seq in 0..2 {
            w.submit(job(seq)).unwrap();
            let d = w.wait(Duration::from_secs(10)).unwrap();
            assert!(d.outcome.unwrap_err().to_string().contains("fails"));
        }
        // Open: the third job fails without calling the model.
        w.submit(job(2)).unwrap();
        let d = w.wait(Duration::from_secs(10)).unwrap();
        assert!(d.outcome.unwrap_err().to_string().contains("circuit open"));
    }

    #[test]
    fn a_slow_model_fills_the_queue_and_jobs_are_refused_not_waited_for() {
        let r = Flaky {
            fail_first: 0,
            calls: 0,
            delay: Duration::from_millis(300),
        };
        let w = ResponderWorker::start(Box::new(r), quick()).unwrap();
        let mut refused = 0;
        for seq in 0..10 {
            if w.submit(job(seq)).is_err() {
                refused += 1;
            }
        }
        // One in the model, two queued: the rest refused at once.
        assert!(refused >= 7, "{refused}");
        assert!(w.queued() <= 2);
    }
}
