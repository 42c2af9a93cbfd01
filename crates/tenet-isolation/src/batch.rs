//! Batches in one request to a worker: the supervisor's side of
//! `Offload::evaluate_batch`. The inputs' JSON goes to the tenant's worker
//! in `BatchDecide` frames of at most [`MAX_BATCH_REQUEST_BYTES`] each, and
//! each frame's answers come back in one `BatchDecided`, in order, every
//! input with its own result or failure. A frame unanswered past the sum of
//! its inputs' kill times kills the worker, as a single decision would.
//! Nothing here picks, starts or loads a worker (supervisor.rs does).

use crate::process::{Unanswered, WorkerProcess};
use crate::protocol::{split_body, BatchAnswer, BatchDecide, BatchDecided, Failure, Frame, Kind};
use crate::supervisor::{failure, failure_error, lock, Inner, Ran, Slot};
use std::ops::Range;
use std::sync::Arc;
use tenet_host::{OffloadBatch, OffloadError};
use tenet_policy::{Evaluation, PolicyError};

/// Most input bytes in one `BatchDecide` frame; a larger batch goes in
/// several, one after the other, so neither side holds more than this of
/// one batch's inputs at once.
pub const MAX_BATCH_REQUEST_BYTES: usize = 16 << 20;

/// Each input's JSON (`None`: no input), or why it could not be sent.
type Encoded = Vec<Result<Option<Vec<u8>>, PolicyError>>;

/// One batch's answers, in order.
type Answers = Vec<Result<Evaluation, OffloadError>>;

impl Inner {
    /// Evaluates each input of `batch` in the tenant's worker.
    pub(crate) async fn evaluate_batch(self: &Arc<Self>, batch: &OffloadBatch) -> Answers {
        let all = |e: OffloadError| vec![Err(e); batch.inputs.len()];
        let (slot, process) = match self
            .worker(&batch.tenant, batch.level, batch.session.as_ref())
            .await
        {
            Ok(worker) => worker,
            Err(e) => return all(e),
        };
        let encoded: Encoded = batch
            .inputs
            .iter()
            .map(|input| input.to_json_bytes().transpose())
            .collect();
        let mut answers = Vec::with_capacity(batch.inputs.len());
        for range in frames(&encoded, MAX_BATCH_REQUEST_BYTES) {
            let part = &encoded[range];
            answers.extend(self.decide_part(&slot, &process, batch, part).await);
        }
        answers
    }

    /// One frame's worth of a batch, loading the policy first (and again,
    /// once, if the worker dropped it meanwhile).
    async fn decide_part(
        self: &Arc<Self>,
        slot: &Arc<Slot>,
        process: &Arc<WorkerProcess>,
        batch: &OffloadBatch,
        part: &[Result<Option<Vec<u8>>, PolicyError>],
    ) -> Answers {
        self.on_loaded(slot, process, &batch.policy, || {
            self.send_part(slot, process, batch, part)
        })
        .await
        .unwrap_or_else(|e| vec![Err(e); part.len()])
    }

    async fn send_part(
        self: &Arc<Self>,
        slot: &Arc<Slot>,
        process: &Arc<WorkerProcess>,
        batch: &OffloadBatch,
        part: &[Result<Option<Vec<u8>>, PolicyError>],
    ) -> Ran<Answers> {
        // Inputs that could not be encoded are answered here; the rest go.
        let mut lens = Vec::with_capacity(part.len());
        let mut body = Vec::new();
        for input in part.iter().flatten() {
            match input {
                None => lens.push(None),
                Some(bytes) => {
                    lens.push(Some(u32::try_from(bytes.len()).unwrap_or(u32::MAX)));
                    body.extend_from_slice(bytes);
                }
            }
        }
        let sent = lens.len();
        let mut answers = if sent == 0 {
            Vec::new()
        } else {
            let head = BatchDecide {
                digest: batch.policy.digest().to_string(),
                path: batch.path.components().to_vec(),
                inputs: lens,
            };
            let deadline = batch.policy.limits().deadline;
            let allowed = self.kill_after(&batch.policy, sent);
            lock(&self.counters).batches += 1;
            let answer = process
                .request(
                    |id| Frame::new(Kind::BatchDecide, id, &head, body),
                    allowed,
                    self.config.max_pending,
                )
                .await;
            match answer {
                Ok(frame) if frame.kind == Kind::BatchDecided => match decoded(&frame, sent) {
                    Ok(answers) => answers,
                    Err(e) => return Ran::Failed(e),
                },
                Ok(frame) => {
                    if let Ok(Failure::NotLoaded { .. }) = frame.head::<Failure>() {
                        return Ran::NotLoaded;
                    }
                    return Ran::Failed(failure(&frame));
                }
                Err(Unanswered::Gone(why)) => return Ran::Failed(Self::unavailable(why)),
                Err(Unanswered::Busy(pending)) => {
                    return Ran::Failed(OffloadError::Busy { pending })
                }
                Err(Unanswered::TimedOut) => {
                    return Ran::Failed(self.overran(slot, process, allowed, deadline))
                }
            }
        }
        .into_iter();
        Ran::Done(
            part.iter()
                .map(|input| match input {
                    Ok(_) => answers.next().unwrap_or_else(|| {
                        Err(Self::unavailable("the worker answered fewer inputs"))
                    }),
                    Err(e) => Err(OffloadError::Policy(e.clone())),
                })
                .collect(),
        )
    }
}

/// Splits `encoded` into runs whose inputs add up to at most `max_bytes`
/// each (an input larger than that goes alone).
fn frames(encoded: &Encoded, max_bytes: usize) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let (mut start, mut bytes) = (0, 0usize);
    for (n, input) in encoded.iter().enumerate() {
        let size = match input {
            Ok(Some(json)) => json.len(),
            _ => 0,
        };
        if n > start && bytes.saturating_add(size) > max_bytes {
            ranges.push(start..n);
            (start, bytes) = (n, 0);
        }
        bytes = bytes.saturating_add(size);
    }
    if start < encoded.len() {
        ranges.push(start..encoded.len());
    }
    ranges
}

/// The answers of a `BatchDecided` frame for `sent` inputs.
fn decoded(frame: &Frame, sent: usize) -> Result<Answers, OffloadError> {
    let head: BatchDecided = frame
        .head()
        .map_err(|e| Inner::unavailable(e.to_string()))?;
    if head.answers.len() != sent {
        return Err(Inner::unavailable(format!(
            "the worker answered {} of a batch of {sent}",
            head.answers.len()
        )));
    }
    let lens = head.answers.iter().map(|answer| match answer {
        BatchAnswer::Decided { len, .. } => *len,
        BatchAnswer::Failed { .. } => None,
    });
    let results = split_body(&frame.body, lens).map_err(|e| Inner::unavailable(e.to_string()))?;
    head.answers
        .into_iter()
        .zip(results)
        .map(|(answer, result)| {
            Ok(match answer {
                BatchAnswer::Decided { evaluator, .. } => Ok(Evaluation {
                    result: result
                        .map(serde_json::from_slice)
                        .transpose()
                        .map_err(|e| Inner::unavailable(format!("the worker's result: {e}")))?,
                    prints: Vec::new(),
                    evaluator,
                }),
                BatchAnswer::Failed { failure } => Err(failure_error(failure)),
            })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn encoded(sizes: &[Option<usize>]) -> Encoded {
        sizes
            .iter()
            .map(|size| match size {
                Some(n) => Ok(Some(vec![b' '; *n])),
                None => Err(PolicyError::Internal {
                    message: "not encoded".into(),
                }),
            })
            .collect()
    }

    /// (input sizes, `None` for one not encoded; expected frames as
    /// (first, end)).
    type FramesCase = (&'static [Option<usize>], &'static [(usize, usize)]);

    #[test]
    fn batches_go_in_frames_of_at_most_the_byte_bound() {
        let cases: &[FramesCase] = &[
            (&[], &[]),
            (&[Some(3), Some(3), Some(3)], &[(0, 2), (2, 3)]),
            (&[Some(10), Some(1)], &[(0, 1), (1, 2)]), // larger than the bound: alone
            (&[Some(1), None, Some(5)], &[(0, 3)]),
            (&[None, None], &[(0, 2)]),
        ];
        for (sizes, expected) in cases {
            let got: Vec<(usize, usize)> = frames(&encoded(sizes), 7)
                .into_iter()
                .map(|r| (r.start, r.end))
                .collect();
            assert_eq!(got, *expected, "{sizes:?}");
        }
    }

    #[test]
    fn answers_are_read_in_order_with_their_failures() {
        let head = BatchDecided {
            answers: vec![
                BatchAnswer::Decided {
                    evaluator: tenet_policy::Evaluator::Vm,
                    len: Some(4),
                },
                BatchAnswer::Failed {
                    failure: Failure::Policy {
                        error: PolicyError::MemoryLimit { limit: 1 },
                    },
                },
                BatchAnswer::Decided {
                    evaluator: tenet_policy::Evaluator::Vm,
                    len: None,
                },
                BatchAnswer::Decided {
                    evaluator: tenet_policy::Evaluator::Vm,
                    len: Some(3),
                },
            ],
        };
        let frame = Frame::new(Kind::BatchDecided, 1, &head, b"true[1]".to_vec());
        let answers = decoded(&frame, 4).unwrap();
        assert_eq!(
            answers[0].as_ref().unwrap().result,
            Some(serde_json::json!(true))
        );
        assert!(matches!(
            answers[1],
            Err(OffloadError::Policy(PolicyError::MemoryLimit { .. }))
        ));
        assert_eq!(answers[2].as_ref().unwrap().result, None);
        assert_eq!(
            answers[3].as_ref().unwrap().result,
            Some(serde_json::json!([1]))
        );
        // A worker that answers another count, or bytes that do not add
        // up, is not believed.
        assert!(decoded(&frame, 3).is_err());
        let short = Frame::new(Kind::BatchDecided, 1, &head, b"true".to_vec());
        assert!(decoded(&short, 4).is_err());
    }
}
