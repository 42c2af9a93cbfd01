//! The file sink for decision logs: events as JSON lines appended to a
//! file, rotated at a size (`path` → `path.1` → … → `path.{max_files-1}`,
//! the oldest deleted). Writes happen on a thread of their own behind a
//! bounded queue, so a slow disk never holds the decision-log worker (a
//! full queue drops the event and counts it). Hand-written: the rotating
//! writers of the ecosystem (tracing-appender, file-rotate) rotate by time
//! or need a logging framework around them; this needs size, a count and
//! a flush at shutdown, in fifty lines.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;

/// Where and how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSinkConfig {
    /// The file events are appended to.
    pub path: PathBuf,
    /// Size at which the file is rotated. Default 100 MiB.
    pub max_bytes: u64,
    /// Files kept, the current one included. Default 5.
    pub max_files: usize,
}

impl Default for FileSinkConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("decisions.log"),
            max_bytes: 100 << 20,
            max_files: 5,
        }
    }
}

enum Message {
    Line(Vec<u8>),
    Flush(mpsc::Sender<()>),
}

/// A running file sink. Cheap to clone.
#[derive(Debug, Clone)]
pub struct FileSink {
    tx: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

/// Events waiting for the writer thread at most.
const QUEUE: usize = 10_000;

struct Writer {
    config: FileSinkConfig,
    file: BufWriter<File>,
    size: u64,
}

fn open(path: &Path) -> io::Result<(BufWriter<File>, u64)> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let size = file.metadata()?.len();
    Ok((BufWriter::new(file), size))
}

fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

impl Writer {
    fn write(&mut self, line: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + line.len() as u64 + 1 > self.config.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(line)?;
        self.file.write_all(b"\n")?;
        self.size += line.len() as u64 + 1;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        let path = &self.config.path;
        let keep = self.config.max_files.max(1);
        if keep == 1 {
            std::fs::remove_file(path)?;
        } else {
            let _ = std::fs::remove_file(numbered(path, keep - 1));
            for n in (1..keep - 1).rev() {
                let from = numbered(path, n);
                if from.exists() {
                    std::fs::rename(&from, numbered(path, n + 1))?;
                }
            }
            std::fs::rename(path, numbered(path, 1))?;
        }
        let (file, size) = open(path)?;
        self.file = file;
        self.size = size;
        Ok(())
    }
}

impl FileSink {
    /// Opens (creates) the file and starts the writer thread.
    pub fn start(config: FileSinkConfig) -> io::Result<Self> {
        let (file, size) = open(&config.path)?;
        let mut writer = Writer { config, file, size };
        let (tx, rx) = mpsc::sync_channel::<Message>(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let lost = dropped.clone();
        std::thread::Builder::new()
            .name("tenet-decision-log-file".into())
            .spawn(move || {
                let mut failing = false;
                for message in rx {
                    match message {
                        Message::Line(line) => match writer.write(&line) {
                            Ok(()) => failing = false,
                            Err(e) => {
                                lost.fetch_add(1, Ordering::Relaxed);
                                if !failing {
                                    tracing::warn!(path = %writer.config.path.display(), error = %e, "writing the decision-log file failed");
                                    failing = true;
                                }
                            }
                        },
                        Message::Flush(done) => {
                            let _ = writer.file.flush();
                            let _ = done.send(());
                        }
                    }
                }
                let _ = writer.file.flush();
            })?;
        Ok(Self { tx, dropped })
    }

    /// Queues one event's JSON; a full queue drops it (counted).
    pub fn write(&self, json: Vec<u8>) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.tx.try_send(Message::Line(json))
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events lost: the queue was full or the write failed.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits (blocking, at most `timeout`) until every event queued so far
    /// is written and flushed.
    pub fn flush(&self, timeout: std::time::Duration) {
        let (done, wait) = mpsc::channel();
        if self.tx.send(Message::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(timeout);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn lines_are_appended_and_rotated_keeping_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.log");
        let sink = FileSink::start(FileSinkConfig {
            path: path.clone(),
            max_bytes: 100,
            max_files: 3,
        })
        .unwrap();
        for i in 0..40 {
            sink.write(format!("{{\"n\":{i}}}").into_bytes());
        }
        sink.flush(Duration::from_secs(5));
        assert_eq!(sink.dropped(), 0);
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        let files = [path.clone(), numbered(&path, 1), numbered(&path, 2)];
        for file in &files {
            let text = read(file);
            assert!(
                text.len() <= 100,
                "{}: {} bytes",
                file.display(),
                text.len()
            );
            for line in text.lines() {
                serde_json::from_str::<serde_json::Value>(line).unwrap();
            }
        }
        assert!(!numbered(&path, 3).exists(), "at most three files");
        // The newest event is last in the current file, older ones in .1.
        assert!(read(&path).trim_end().ends_with("{\"n\":39}"));
        let older: u32 = read(&numbered(&path, 1))
            .lines()
            .last()
            .unwrap()
            .trim_start_matches("{\"n\":")
            .trim_end_matches('}')
            .parse()
            .unwrap();
        assert!(older < 39);
    }

    #[test]
    fn an_unwritable_path_is_an_error_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let e = FileSink::start(FileSinkConfig {
            path: dir.path().join("missing/dir/decisions.log"),
            ..FileSinkConfig::default()
        })
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
