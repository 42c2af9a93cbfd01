//! The worker process: `tenet worker` (or the `tenet-worker` binary) reads
//! frames from stdin and writes answers to stdout, compiling the policies
//! the host sends and evaluating on threads of its own. It applies its
//! resource limits to itself before it reads anything, and exits when the
//! host goes away (stdin closes, or the parent-death signal fires), so no
//! worker outlives its host. It never reads files, sockets or the
//! environment for policies: everything comes over the channel.

use crate::protocol::{
    check_hello, split_body, BatchAnswer, BatchDecide, BatchDecided, Decide, Decided, Failure,
    Frame, HealthReport, Hello, Kind, Loaded, ProtocolError, MAX_TO_HOST, MAX_TO_WORKER,
};
use std::collections::VecDeque;
use std::io::{BufReader, BufWriter, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use tenet_policy::{Evaluator, Input, Policy, PolicyError, PolicyImage, QueryPath};

/// How many compiled policies a worker keeps (the active revision and the
/// ones before it, for decisions still running on them).
const KEEP_POLICIES: usize = 4;

/// Most result bytes in one batch's answer: half of what the host reads in
/// one frame, leaving room for the head.
const MAX_BATCH_ANSWER_BYTES: usize = MAX_TO_HOST / 2;

/// A worker's settings, from its command line.
#[derive(Debug, Clone, Default)]
pub struct WorkerArgs {
    /// Evaluation threads (at least one).
    pub threads: usize,
    /// Stack of each evaluation thread, in bytes.
    pub stack_bytes: usize,
    /// Address-space limit (`RLIMIT_AS`), bytes; 0 leaves it.
    pub max_memory_bytes: u64,
    /// CPU-time limit (`RLIMIT_CPU`), seconds; 0 leaves it.
    pub max_cpu_seconds: u64,
    /// The host's pid: the worker exits if its parent is not (or no
    /// longer) that process.
    pub parent_pid: Option<u32>,
}

/// Why a worker stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The channel to the host failed.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The parent is gone or is not the host that started the worker.
    #[error("parent process {expected} is gone")]
    Orphaned {
        /// The pid expected.
        expected: u32,
    },
    /// A resource limit could not be applied.
    #[error("applying worker limits: {0}")]
    Limits(String),
}

struct Shared {
    out: Mutex<BufWriter<std::io::Stdout>>,
    policies: Mutex<VecDeque<Policy>>,
    evaluations: AtomicU64,
    in_flight: AtomicU64,
}

impl Shared {
    fn send(&self, frame: &Frame) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        // The host reads what it can; a broken stdout means the host is
        // gone and the next read of stdin ends the worker.
        if let Err(e) = frame.write(&mut *out) {
            tracing::debug!(error = %e, "writing to the host failed");
        }
    }

    fn fail(&self, id: u64, failure: Failure) {
        self.send(&Frame::new(Kind::Failure, id, &failure, Vec::new()));
    }

    fn policy(&self, digest: &str) -> Option<Policy> {
        let policies = self.policies.lock().unwrap_or_else(|p| p.into_inner());
        policies.iter().find(|p| p.digest() == digest).cloned()
    }

    fn keep(&self, policy: Policy) {
        let mut policies = self.policies.lock().unwrap_or_else(|p| p.into_inner());
        policies.retain(|p| p.digest() != policy.digest());
        policies.push_front(policy);
        policies.truncate(KEEP_POLICIES);
    }
}

/// Runs a worker on this process's stdin and stdout until the host says
/// `Shutdown` or goes away.
pub fn run(args: &WorkerArgs) -> Result<(), WorkerError> {
    crate::limits::apply(args).map_err(WorkerError::Limits)?;
    if let Some(expected) = args.parent_pid {
        crate::limits::die_with_parent(expected).map_err(|_| WorkerError::Orphaned { expected })?;
    }
    let shared = Arc::new(Shared {
        out: Mutex::new(BufWriter::new(std::io::stdout())),
        policies: Mutex::new(VecDeque::new()),
        evaluations: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
    });
    shared.send(&Frame::new(Kind::Hello, 0, &Hello::ours(), Vec::new()));
    let mut stdin = BufReader::new(std::io::stdin().lock());
    let hello = Frame::read(&mut stdin, MAX_TO_WORKER)?;
    if let Err(e) = check_hello(&hello) {
        shared.fail(
            0,
            Failure::BadRequest {
                reason: e.to_string(),
            },
        );
        return Err(e.into());
    }
    let (jobs, queue) = mpsc::channel::<Frame>();
    let queue = Arc::new(Mutex::new(queue));
    let threads: Vec<_> = (0..args.threads.max(1))
        .map(|n| {
            let (queue, shared) = (queue.clone(), shared.clone());
            std::thread::Builder::new()
                .name(format!("tenet-worker-eval-{n}"))
                .stack_size(args.stack_bytes.max(1 << 20))
                .spawn(move || loop {
                    let next = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok(frame) = next else { return };
                    handle(&shared, frame);
                    shared.in_flight.fetch_sub(1, Ordering::Relaxed);
                })
        })
        .collect::<Result<_, _>>()
        .map_err(|e| WorkerError::Limits(format!("starting evaluation threads: {e}")))?;
    let result = loop {
        let frame = match Frame::read(&mut stdin, MAX_TO_WORKER) {
            Ok(frame) => frame,
            // The host closed the channel: it is gone or done with us.
            Err(ProtocolError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break Ok(())
            }
            Err(e) => break Err(e.into()),
        };
        match frame.kind {
            Kind::Load | Kind::Decide | Kind::BatchDecide => {
                shared.in_flight.fetch_add(1, Ordering::Relaxed);
                if jobs.send(frame).is_err() {
                    break Ok(());
                }
            }
            Kind::Health => {
                let report = HealthReport {
                    rss_bytes: crate::limits::rss_bytes(),
                    policies: shared
                        .policies
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .len(),
                    evaluations: shared.evaluations.load(Ordering::Relaxed),
                    in_flight: shared.in_flight.load(Ordering::Relaxed),
                };
                shared.send(&Frame::new(
                    Kind::HealthReport,
                    frame.id,
                    &report,
                    Vec::new(),
                ));
            }
            Kind::Shutdown => break Ok(()),
            other => shared.fail(
                frame.id,
                Failure::BadRequest {
                    reason: format!("a worker does not take {other:?}"),
                },
            ),
        }
    };
    // Finish what was taken, then exit.
    drop(jobs);
    for thread in threads {
        let _ = thread.join();
    }
    let _ = shared.out.lock().unwrap_or_else(|p| p.into_inner()).flush();
    result
}

fn handle(shared: &Shared, frame: Frame) {
    match frame.kind {
        Kind::Load => load(shared, frame),
        Kind::Decide => decide(shared, frame),
        Kind::BatchDecide => batch(shared, frame),
        _ => {}
    }
}

fn load(shared: &Shared, frame: Frame) {
    let image: PolicyImage = match frame.head() {
        Ok(image) => image,
        Err(e) => {
            return shared.fail(
                frame.id,
                Failure::BadRequest {
                    reason: e.to_string(),
                },
            )
        }
    };
    let digest = image.digest.clone();
    if shared.policy(&digest).is_none() {
        match image.compile(&frame.body) {
            Ok(policy) => shared.keep(policy),
            Err(error) => return shared.fail(frame.id, Failure::Policy { error }),
        }
    }
    shared.send(&Frame::new(
        Kind::Loaded,
        frame.id,
        &Loaded { digest },
        Vec::new(),
    ));
}

fn decide(shared: &Shared, frame: Frame) {
    let Some((head, policy)) = policy_for::<Decide>(shared, &frame, |h| &h.digest) else {
        return;
    };
    let path = QueryPath::from_components(head.path);
    let input = head.has_input.then_some(&frame.body[..]);
    let evaluated = evaluate(&policy, &path, input);
    shared.evaluations.fetch_add(1, Ordering::Relaxed);
    match evaluated {
        Ok((evaluator, body)) => {
            let head = Decided {
                evaluator,
                defined: body.is_some(),
            };
            shared.send(&Frame::new(
                Kind::Decided,
                frame.id,
                &head,
                body.unwrap_or_default(),
            ));
        }
        Err(error) => shared.fail(frame.id, Failure::Policy { error }),
    }
}

/// Decides each input of a batch in turn, on this thread. An input that
/// fails is answered with its failure and the others go on; results past
/// [`MAX_BATCH_ANSWER_BYTES`] in all fail as too large, so the answer
/// stays readable by the host.
fn batch(shared: &Shared, frame: Frame) {
    let Some((head, policy)) = policy_for::<BatchDecide>(shared, &frame, |h| &h.digest) else {
        return;
    };
    let inputs = match split_body(&frame.body, head.inputs.iter().copied()) {
        Ok(inputs) => inputs,
        Err(e) => {
            return shared.fail(
                frame.id,
                Failure::BadRequest {
                    reason: e.to_string(),
                },
            )
        }
    };
    let path = QueryPath::from_components(head.path);
    let mut answers = Vec::with_capacity(inputs.len());
    let mut body = Vec::new();
    for input in inputs {
        let evaluated = evaluate(&policy, &path, input);
        shared.evaluations.fetch_add(1, Ordering::Relaxed);
        answers.push(match evaluated {
            Ok((evaluator, None)) => BatchAnswer::Decided {
                evaluator,
                len: None,
            },
            Ok((evaluator, Some(result)))
                if body.len().saturating_add(result.len()) <= MAX_BATCH_ANSWER_BYTES =>
            {
                let len = u32::try_from(result.len()).unwrap_or(u32::MAX);
                body.extend_from_slice(&result);
                BatchAnswer::Decided {
                    evaluator,
                    len: Some(len),
                }
            }
            Ok(_) => BatchAnswer::Failed {
                failure: Failure::Policy {
                    error: PolicyError::ResultTooLarge {
                        limit: MAX_BATCH_ANSWER_BYTES as u64,
                    },
                },
            },
            Err(error) => BatchAnswer::Failed {
                failure: Failure::Policy { error },
            },
        });
    }
    shared.send(&Frame::new(
        Kind::BatchDecided,
        frame.id,
        &BatchDecided { answers },
        body,
    ));
}

/// A request's head and the policy it names, or `None` once the request
/// has been answered with why not.
fn policy_for<H: serde::de::DeserializeOwned>(
    shared: &Shared,
    frame: &Frame,
    digest: impl Fn(&H) -> &String,
) -> Option<(H, Policy)> {
    let head: H = match frame.head() {
        Ok(head) => head,
        Err(e) => {
            shared.fail(
                frame.id,
                Failure::BadRequest {
                    reason: e.to_string(),
                },
            );
            return None;
        }
    };
    let Some(policy) = shared.policy(digest(&head)) else {
        shared.fail(
            frame.id,
            Failure::NotLoaded {
                digest: digest(&head).clone(),
            },
        );
        return None;
    };
    Some((head, policy))
}

/// One evaluation: the evaluator that decided and the result's JSON
/// (`None`: undefined). `input` is JSON text, or `None` for no input.
fn evaluate(
    policy: &Policy,
    path: &QueryPath,
    input: Option<&[u8]>,
) -> Result<(Evaluator, Option<Vec<u8>>), PolicyError> {
    let input = match input {
        Some(bytes) => {
            let text = std::str::from_utf8(bytes).map_err(|e| PolicyError::InvalidInput {
                reason: e.to_string(),
            })?;
            Input::from_json(text, policy.limits())?
        }
        None => Input::none(),
    };
    let evaluation = policy.query(path)?.evaluate(&input)?;
    let body = evaluation
        .result
        .as_ref()
        .map(|result| {
            serde_json::to_vec(result).map_err(|e| PolicyError::Internal {
                message: format!("serializing the result: {e}"),
            })
        })
        .transpose()?;
    Ok((evaluation.evaluator, body))
}
