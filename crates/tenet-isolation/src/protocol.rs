//! The worker protocol: length-framed messages over a byte stream (the
//! worker's stdin and stdout). A frame is
//!
//! ```text
//! len: u32 LE (of what follows) | kind: u8 | id: u64 LE | head_len: u32 LE | head (JSON) | body
//! ```
//!
//! The head is a small JSON object; the body carries documents as JSON text
//! (an input, a result, a data document), so a document is serialized once
//! by the sender and parsed once by the receiver. Both sides open with
//! `Hello` naming [`PROTOCOL`]; a peer that sends anything else, or another
//! version, is refused. Frames are bounded by the reader ([`MAX_TO_WORKER`],
//! [`MAX_TO_HOST`]) before anything is allocated. Encoding only: no
//! processes, no policies.

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::io::{self, Read, Write};
use tenet_policy::{Evaluator, PolicyError, PolicyImage};

/// The protocol version both sides must speak (2: batches).
pub const PROTOCOL: u32 = 2;

/// Largest frame the worker reads (a policy image with its data).
pub const MAX_TO_WORKER: usize = 1 << 30;

/// Largest frame the host reads (a result, bounded in the worker by
/// `max_result_bytes`, 64 MiB by default).
pub const MAX_TO_HOST: usize = 256 << 20;

/// What a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Both directions, first: [`Hello`].
    Hello = 1,
    /// Host → worker: compile a policy ([`PolicyImage`] head, data body).
    Load = 2,
    /// Worker → host: the policy is loaded ([`Loaded`]).
    Loaded = 3,
    /// Host → worker: evaluate ([`Decide`] head, input body).
    Decide = 4,
    /// Worker → host: the answer ([`Decided`] head, result body; an empty
    /// body is undefined).
    Decided = 5,
    /// Host → worker: are you alive?
    Health = 6,
    /// Worker → host: [`HealthReport`].
    HealthReport = 7,
    /// Host → worker: finish what runs and exit.
    Shutdown = 8,
    /// Worker → host: a request failed ([`Failure`]).
    Failure = 9,
    /// Host → worker: evaluate one path for several inputs
    /// ([`BatchDecide`] head; the inputs' JSON one after another in the
    /// body).
    BatchDecide = 10,
    /// Worker → host: the batch's answers, in order ([`BatchDecided`]
    /// head; the defined results' JSON one after another in the body).
    BatchDecided = 11,
}

impl Kind {
    fn from_u8(n: u8) -> Option<Self> {
        Some(match n {
            1 => Self::Hello,
            2 => Self::Load,
            3 => Self::Loaded,
            4 => Self::Decide,
            5 => Self::Decided,
            6 => Self::Health,
            7 => Self::HealthReport,
            8 => Self::Shutdown,
            9 => Self::Failure,
            10 => Self::BatchDecide,
            11 => Self::BatchDecided,
            _ => return None,
        })
    }
}

/// The opening message of each side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL`].
    pub protocol: u32,
    /// The sender's crate version, for error messages.
    pub version: String,
    /// The sender's process id.
    pub pid: u32,
}

impl Hello {
    /// This side's hello.
    pub fn ours() -> Self {
        Self {
            protocol: PROTOCOL,
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
        }
    }
}

/// A compiled policy is ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loaded {
    /// Its digest.
    pub digest: String,
}

/// One evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decide {
    /// The loaded policy to use.
    pub digest: String,
    /// Components of the path under `data`.
    pub path: Vec<String>,
    /// Whether the body is an input (an empty body could not tell no input
    /// from an empty one).
    pub has_input: bool,
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decided {
    /// Which evaluator decided.
    pub evaluator: Evaluator,
    /// Whether the result is defined (then the body is its JSON).
    pub defined: bool,
}

/// Several evaluations of one path, decided one after another on one of
/// the worker's threads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchDecide {
    /// The loaded policy to use.
    pub digest: String,
    /// Components of the path under `data`.
    pub path: Vec<String>,
    /// Each input's length in the body, in order; `None` for no input.
    pub inputs: Vec<Option<u32>>,
}

/// A batch's answers, one per input, in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchDecided {
    /// The answers.
    pub answers: Vec<BatchAnswer>,
}

/// One input's answer in a batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum BatchAnswer {
    /// Decided ([`Decided`]); `len` is the result's length in the body,
    /// `None` when it is undefined.
    Decided {
        /// Which evaluator decided.
        evaluator: Evaluator,
        /// The result's length in the body.
        len: Option<u32>,
    },
    /// This input failed; the others are unaffected.
    Failed {
        /// Why.
        failure: Failure,
    },
}

/// Cuts `body` into the pieces `lens` names, in order (`None` is no
/// piece); the lengths must add up to the body's.
pub fn split_body(
    body: &[u8],
    lens: impl IntoIterator<Item = Option<u32>>,
) -> Result<Vec<Option<&[u8]>>, ProtocolError> {
    let mut rest = body;
    let mut pieces = Vec::new();
    for len in lens {
        pieces.push(match len {
            None => None,
            Some(len) => {
                let len = len as usize;
                if len > rest.len() {
                    return Err(ProtocolError::Malformed(
                        "batch pieces longer than the body".into(),
                    ));
                }
                let (piece, after) = rest.split_at(len);
                rest = after;
                Some(piece)
            }
        });
    }
    if !rest.is_empty() {
        return Err(ProtocolError::Malformed(format!(
            "{} bytes after the batch's last piece",
            rest.len()
        )));
    }
    Ok(pieces)
}

/// What a worker says of itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// Resident memory, bytes (0 where it cannot be read).
    pub rss_bytes: u64,
    /// Policies held.
    pub policies: usize,
    /// Evaluations answered.
    pub evaluations: u64,
    /// Evaluations running or waiting.
    pub in_flight: u64,
}

/// Why a request failed in the worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "failure", rename_all = "snake_case")]
pub enum Failure {
    /// The evaluation (or the compile) failed as it would have in the host.
    Policy {
        /// The error.
        error: PolicyError,
    },
    /// `Decide` named a policy the worker does not hold (never loaded, or
    /// dropped): load it and ask again.
    NotLoaded {
        /// The digest asked for.
        digest: String,
    },
    /// The request could not be read.
    BadRequest {
        /// Why.
        reason: String,
    },
}

/// One frame, read or to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What it is.
    pub kind: Kind,
    /// Pairs an answer with its request (0 for `Hello` and `Shutdown`).
    pub id: u64,
    /// The head, JSON.
    pub head: Vec<u8>,
    /// The body.
    pub body: Vec<u8>,
}

/// A frame that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The stream failed or ended.
    #[error("worker channel: {0}")]
    Io(#[from] io::Error),
    /// A frame claims more bytes than the reader accepts.
    #[error("frame of {size} bytes is over the limit of {limit}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A frame that is not one of ours.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The peer speaks another protocol, or is not a tenet worker.
    #[error("peer refused: {0}")]
    Refused(String),
}

impl Frame {
    /// A frame with `head` serialized as JSON.
    pub fn new(kind: Kind, id: u64, head: &impl Serialize, body: Vec<u8>) -> Self {
        // Heads are plain structs of strings and numbers: serializing them
        // cannot fail, and an empty head would be refused by the reader.
        let head = serde_json::to_vec(head).unwrap_or_default();
        Self {
            kind,
            id,
            head,
            body,
        }
    }

    /// A frame with an empty (`{}`) head and no body.
    pub fn bare(kind: Kind, id: u64) -> Self {
        Self {
            kind,
            id,
            head: b"{}".to_vec(),
            body: Vec::new(),
        }
    }

    /// The head as `T`.
    pub fn head<T: DeserializeOwned>(&self) -> Result<T, ProtocolError> {
        serde_json::from_slice(&self.head)
            .map_err(|e| ProtocolError::Malformed(format!("{:?} head: {e}", self.kind)))
    }

    /// The frame's bytes.
    pub fn encode(&self) -> Result<Vec<u8>, ProtocolError> {
        let len = 1 + 8 + 4 + self.head.len() + self.body.len();
        let size = |n: usize| {
            u32::try_from(n).map_err(|_| ProtocolError::TooLarge {
                size: n,
                limit: u32::MAX as usize,
            })
        };
        let mut out = Vec::with_capacity(4 + len);
        out.extend_from_slice(&size(len)?.to_le_bytes());
        out.push(self.kind as u8);
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&size(self.head.len())?.to_le_bytes());
        out.extend_from_slice(&self.head);
        out.extend_from_slice(&self.body);
        Ok(out)
    }

    /// Splits a frame's bytes after its length prefix.
    pub fn decode(bytes: Vec<u8>) -> Result<Self, ProtocolError> {
        if bytes.len() < 13 {
            return Err(ProtocolError::Malformed(
                "frame shorter than its header".into(),
            ));
        }
        let kind = Kind::from_u8(bytes[0])
            .ok_or_else(|| ProtocolError::Malformed(format!("unknown kind {}", bytes[0])))?;
        let mut id = [0u8; 8];
        id.copy_from_slice(&bytes[1..9]);
        let mut head_len = [0u8; 4];
        head_len.copy_from_slice(&bytes[9..13]);
        let head_len = u32::from_le_bytes(head_len) as usize;
        let head_end = 13usize
            .checked_add(head_len)
            .filter(|end| *end <= bytes.len())
            .ok_or_else(|| ProtocolError::Malformed("head longer than the frame".into()))?;
        Ok(Self {
            kind,
            id: u64::from_le_bytes(id),
            head: bytes[13..head_end].to_vec(),
            body: bytes[head_end..].to_vec(),
        })
    }

    /// The length prefix's value, checked against `limit`.
    pub fn length(prefix: [u8; 4], limit: usize) -> Result<usize, ProtocolError> {
        let size = u32::from_le_bytes(prefix) as usize;
        if size > limit {
            return Err(ProtocolError::TooLarge { size, limit });
        }
        Ok(size)
    }

    /// Reads one frame (blocking), at most `limit` bytes.
    pub fn read(from: &mut impl Read, limit: usize) -> Result<Self, ProtocolError> {
        let mut prefix = [0u8; 4];
        from.read_exact(&mut prefix)?;
        let size = Self::length(prefix, limit)?;
        let mut bytes = vec![0u8; size];
        from.read_exact(&mut bytes)?;
        Self::decode(bytes)
    }

    /// Writes the frame and flushes (blocking).
    pub fn write(&self, to: &mut impl Write) -> Result<(), ProtocolError> {
        to.write_all(&self.encode()?)?;
        to.flush()?;
        Ok(())
    }
}

/// Checks a peer's hello.
pub fn check_hello(frame: &Frame) -> Result<Hello, ProtocolError> {
    if frame.kind != Kind::Hello {
        return Err(ProtocolError::Refused(format!(
            "expected a hello, got {:?}",
            frame.kind
        )));
    }
    let hello: Hello = frame.head()?;
    if hello.protocol != PROTOCOL {
        return Err(ProtocolError::Refused(format!(
            "peer speaks worker protocol {} (tenet {}), this side speaks {PROTOCOL} (tenet {})",
            hello.protocol,
            hello.version,
            env!("CARGO_PKG_VERSION")
        )));
    }
    Ok(hello)
}

/// A `Load` frame for `image` with its data.
pub fn load_frame(id: u64, image: &PolicyImage, data_json: Vec<u8>) -> Frame {
    Frame::new(Kind::Load, id, image, data_json)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let frame = Frame::new(
            Kind::Decide,
            42,
            &Decide {
                digest: "d".into(),
                path: vec!["a".into(), "allow".into()],
                has_input: true,
            },
            br#"{"user":"alice"}"#.to_vec(),
        );
        let bytes = frame.encode().unwrap();
        let back = Frame::read(&mut bytes.as_slice(), MAX_TO_WORKER).unwrap();
        assert_eq!(back, frame);
        let head: Decide = back.head().unwrap();
        assert_eq!(head.path, ["a", "allow"]);
    }

    #[test]
    fn a_frame_over_the_limit_is_refused_before_it_is_read() {
        let mut bytes = (u32::MAX).to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 16]);
        let e = Frame::read(&mut bytes.as_slice(), MAX_TO_HOST).unwrap_err();
        assert!(matches!(e, ProtocolError::TooLarge { .. }), "{e}");
    }

    #[test]
    fn malformed_frames_are_errors() {
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![1, 0, 0],
            vec![200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            {
                let mut f = vec![1u8];
                f.extend_from_slice(&0u64.to_le_bytes());
                f.extend_from_slice(&1000u32.to_le_bytes());
                f
            },
        ];
        for case in cases {
            assert!(Frame::decode(case.clone()).is_err(), "{case:?}");
        }
    }

    #[test]
    fn hellos_of_another_protocol_or_kind_are_refused() {
        let ours = Frame::new(Kind::Hello, 0, &Hello::ours(), vec![]);
        assert_eq!(check_hello(&ours).unwrap().protocol, PROTOCOL);
        let mut other = Hello::ours();
        other.protocol = PROTOCOL + 1;
        let e = check_hello(&Frame::new(Kind::Hello, 0, &other, vec![])).unwrap_err();
        assert!(e.to_string().contains("protocol 3"), "{e}");
        let e = check_hello(&Frame::bare(Kind::Health, 0)).unwrap_err();
        assert!(e.to_string().contains("expected a hello"), "{e}");
    }

    #[test]
    fn batch_bodies_split_by_their_lengths_and_nothing_else() {
        let body = b"{}[1]null";
        let pieces = split_body(body, [Some(2), None, Some(3), Some(4)]).unwrap();
        assert_eq!(
            pieces,
            [
                Some(&b"{}"[..]),
                None,
                Some(&b"[1]"[..]),
                Some(&b"null"[..])
            ]
        );
        for lens in [
            vec![Some(2), Some(3)],          // bytes left over
            vec![Some(2), Some(3), Some(5)], // past the end
            vec![Some(u32::MAX)],
        ] {
            assert!(split_body(body, lens.clone()).is_err(), "{lens:?}");
        }
        assert_eq!(split_body(b"", [None, None]).unwrap(), [None, None]);
    }

    #[test]
    fn batch_answers_round_trip_with_their_failures() {
        let head = BatchDecided {
            answers: vec![
                BatchAnswer::Decided {
                    evaluator: Evaluator::Vm,
                    len: Some(4),
                },
                BatchAnswer::Failed {
                    failure: Failure::Policy {
                        error: PolicyError::MemoryLimit { limit: 7 },
                    },
                },
                BatchAnswer::Decided {
                    evaluator: Evaluator::Interpreter,
                    len: None,
                },
            ],
        };
        let frame = Frame::new(Kind::BatchDecided, 3, &head, b"true".to_vec());
        let bytes = frame.encode().unwrap();
        let back: BatchDecided = Frame::read(&mut bytes.as_slice(), MAX_TO_HOST)
            .unwrap()
            .head()
            .unwrap();
        assert!(matches!(
            back.answers[..],
            [
                BatchAnswer::Decided {
                    evaluator: Evaluator::Vm,
                    len: Some(4)
                },
                BatchAnswer::Failed {
                    failure: Failure::Policy { .. }
                },
                BatchAnswer::Decided { len: None, .. },
            ]
        ));
    }

    #[test]
    fn failures_carry_policy_errors() {
        let failure = Failure::Policy {
            error: PolicyError::MemoryLimit { limit: 7 },
        };
        let json = serde_json::to_string(&failure).unwrap();
        let back: Failure = serde_json::from_str(&json).unwrap();
        match back {
            Failure::Policy { error } => assert_eq!(error.kind(), "memory_limit"),
            other => panic!("{other:?}"),
        }
    }
}
