//! Recording decisions off the request path: a front end hands over what
//! it decided ([`Decided`]: a few clones and an id) and returns; a worker
//! task builds the OPA event, applies the tenant's `system.log.drop` and
//! `system.log.mask` rules (evaluated through the [`RuleEvaluator`] the
//! embedder supplies, since this crate knows no hosts) and buffers it; a
//! tenant with no such rules and no configured masks has its event
//! encoded straight to JSON text (`encode.rs`), the same bytes. The
//! hand-over queue is bounded: when it is full the decision is counted as
//! dropped for its tenant, never waited for. The worker takes decisions in
//! batches and then lets the next ones gather for a moment, so a busy
//! server wakes it a few hundred times a second, not once per decision.

use crate::mask::{apply_log_rules, LogRules};
use crate::{DecisionEvent, DecisionLogs};
use serde_json::{Map, Value};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::mpsc;

/// Decisions waiting for the worker, at most.
const QUEUE: usize = 10_000;

/// Decisions taken from the queue at once.
const BATCH: usize = 256;

/// How long the worker lets decisions gather after a batch.
const GATHER: std::time::Duration = std::time::Duration::from_millis(2);

/// A boxed future of a rule's result.
pub type RuleFuture = Pin<Box<dyn Future<Output = Result<Option<Value>, String>> + Send>>;

/// Evaluates a tenant's decision-log rules and knows its labels (the
/// embedder's host does).
pub trait RuleEvaluator: Send + Sync + 'static {
    /// The tenant's own labels, added to its events' (default: none).
    fn labels(&self, _tenant: &str) -> Map<String, Value> {
        Map::new()
    }
    /// Which of `system.log.drop` and `system.log.mask` the tenant defines.
    fn rules(&self, tenant: &str) -> LogRules;
    /// Evaluates `path` (`system/log/drop` or `system/log/mask`) for
    /// `tenant` with `input` (the event).
    fn evaluate(&self, tenant: &str, path: &'static str, input: Value) -> RuleFuture;
}

/// The input of a decision, as the front end has it: JSON already, or a
/// conversion to run on the worker rather than on the request path.
pub enum LoggedInput {
    Json(Value),
    Deferred(Box<dyn FnOnce() -> Option<Value> + Send>),
    /// A document the worker encodes itself: straight to JSON text when
    /// nothing needs the event as a value (no log rules, no masks).
    Document(Box<dyn InputDocument>),
}

/// An input document in the front end's own form (an engine value, say).
pub trait InputDocument: Send {
    /// The document as a JSON value; `None` when there is none.
    fn to_value(&self) -> Option<Value>;
    /// Appends the document's JSON text to `out`; false (nothing
    /// appended) when there is none.
    fn write_json(&self, out: &mut Vec<u8>) -> bool;
}

impl std::fmt::Debug for LoggedInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Json(v) => f.debug_tuple("Json").field(v).finish(),
            Self::Deferred(_) => f.write_str("Deferred"),
            Self::Document(_) => f.write_str("Document"),
        }
    }
}

/// One decision to log.
#[derive(Debug)]
pub struct Decided {
    pub tenant: String,
    /// The id the client got.
    pub decision_id: String,
    /// Slash-separated, without `data`.
    pub path: String,
    pub revision: String,
    pub input: Option<LoggedInput>,
    pub result: Option<Value>,
    /// When it was decided.
    pub at: SystemTime,
    /// The client's address (`ip:port`), when known.
    pub requested_by: Option<String>,
    /// The request's sequence number, when known.
    pub req_id: Option<u64>,
    /// OPA's timers (`timer_server_handler_ns`, …), in nanoseconds.
    pub metrics: Vec<(&'static str, u64)>,
}

/// What the worker is handed.
enum Message {
    Decided(Box<Decided>),
    /// Answered once everything handed over before it is buffered.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Where events go besides the upload buffers, and what is always erased.
#[derive(Debug, Clone, Default)]
pub struct RecorderOptions {
    /// Buffer events for the upload loop (a decision-log service is
    /// configured).
    pub upload: bool,
    /// Also append them to a file.
    pub file: Option<crate::FileSink>,
    /// Pointers (`/input/…`, `/result/…`) erased from every event of a
    /// tenant (key `*`: of every tenant), after the tenant's own rules;
    /// listed in the event's `erased`.
    pub masks: std::collections::BTreeMap<String, Vec<String>>,
}

/// Hands decisions to the decision-log worker. Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    logs: DecisionLogs,
    tx: mpsc::Sender<Message>,
    file: Option<crate::FileSink>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("logs", &self.logs)
            .finish()
    }
}

impl Recorder {
    /// Starts the worker on the current tokio runtime: events carry
    /// `labels` (OPA's `id`, `version`, …) plus `tenant`.
    pub fn start(
        logs: DecisionLogs,
        labels: Map<String, Value>,
        rules: Arc<dyn RuleEvaluator>,
    ) -> Self {
        Self::start_with(
            logs,
            labels,
            rules,
            RecorderOptions {
                upload: true,
                ..RecorderOptions::default()
            },
        )
    }

    /// [`Recorder::start`] with a file sink, configured masks, or no
    /// upload buffering.
    pub fn start_with(
        logs: DecisionLogs,
        labels: Map<String, Value>,
        rules: Arc<dyn RuleEvaluator>,
        options: RecorderOptions,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<Message>(QUEUE);
        let file = options.file.clone();
        let mut worker = Worker {
            logs: logs.clone(),
            labels,
            rules,
            options,
            label_cache: crate::encode::LabelCache::default(),
        };
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            loop {
                let taken = rx.recv_many(&mut batch, BATCH).await;
                if taken == 0 {
                    break;
                }
                for message in batch.drain(..) {
                    match message {
                        Message::Decided(d) => worker.record(*d).await,
                        Message::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
                // Let decisions gather rather than waking for each one
                // (a wake-up per decision costs the busy server more than
                // encoding it); an event waits at most this long.
                if taken < BATCH {
                    tokio::time::sleep(GATHER).await;
                }
            }
        });
        Self { logs, tx, file }
    }

    /// Hands `decided` over; counted as dropped when the queue is full.
    pub fn record(&self, decided: Decided) {
        let tenant = decided.tenant.clone();
        if self
            .tx
            .try_send(Message::Decided(Box::new(decided)))
            .is_err()
        {
            self.logs.count_dropped(&tenant);
        }
    }

    /// Waits until every decision handed over so far is buffered (or
    /// dropped): before the last upload at shutdown.
    pub async fn flush(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
        if let Some(file) = self.file.clone() {
            let _ = tokio::task::spawn_blocking(move || {
                file.flush(std::time::Duration::from_secs(2));
            })
            .await;
        }
    }

    /// The buffers it records into.
    pub fn logs(&self) -> &DecisionLogs {
        &self.logs
    }
}

/// The recorder's worker: turns each decision into its event and hands it
/// to the sinks.
struct Worker {
    logs: DecisionLogs,
    /// The process's labels.
    labels: Map<String, Value>,
    rules: Arc<dyn RuleEvaluator>,
    options: RecorderOptions,
    label_cache: crate::encode::LabelCache,
}

impl Worker {
    /// Builds the event of `d` (the tenant's log rules and the configured
    /// masks applied; dropped and counted when they say so) and writes it
    /// to the file and the upload buffer.
    async fn record(&mut self, d: Decided) {
        let tenant = d.tenant.clone();
        let rules_here = self.rules.rules(&tenant);
        let pointers: Vec<Value> = ["*", tenant.as_str()]
            .iter()
            .filter_map(|key| self.options.masks.get(*key))
            .flatten()
            .map(|p| Value::String(p.clone()))
            .collect();
        let json = if !rules_here.drop && !rules_here.mask && pointers.is_empty() {
            // Nothing reads the event as a value: encode it at once.
            let rules = &self.rules;
            let own = self
                .label_cache
                .get(&self.labels, &tenant, &d.revision, || rules.labels(&tenant));
            crate::encode::event_json(own, d)
        } else {
            let mut own = self.labels.clone();
            own.extend(self.rules.labels(&tenant));
            let event = event(&own, d);
            let evaluate =
                |path: &'static str, input: Value| self.rules.evaluate(&tenant, path, input);
            let Some(mut event) = apply_log_rules(&tenant, rules_here, event, evaluate).await
            else {
                self.logs.count_dropped(&tenant);
                return;
            };
            if !pointers.is_empty() && event.mask(&Value::Array(pointers)).is_err() {
                // The pointers were checked with the configuration.
                self.logs.count_dropped(&tenant);
                return;
            }
            event.to_json()
        };
        match (&self.options.file, self.options.upload) {
            (Some(file), true) => {
                file.write(json.clone());
                self.logs.record_json(&tenant, json);
            }
            (Some(file), false) => file.write(json),
            (None, true) => self.logs.record_json(&tenant, json),
            (None, false) => {}
        }
    }
}

pub(crate) fn event(labels: &Map<String, Value>, d: Decided) -> DecisionEvent {
    let mut labels = labels.clone();
    labels.insert("tenant".into(), Value::String(d.tenant.clone()));
    let mut event = DecisionEvent::new(labels, d.decision_id, &d.tenant, &d.revision, d.path);
    event.timestamp = humantime::format_rfc3339_nanos(d.at).to_string();
    event.input = match d.input {
        Some(LoggedInput::Json(v)) => Some(v),
        Some(LoggedInput::Deferred(f)) => f(),
        Some(LoggedInput::Document(doc)) => doc.to_value(),
        None => None,
    };
    event.result = d.result;
    event.requested_by = d.requested_by;
    event.req_id = d.req_id;
    event.metrics = d
        .metrics
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::from(v)))
        .collect();
    event
}
