//! A JSON-lines file sink for local use: one `Payload` per line, appended and fsynced per
//! delivery. The file is its own position (its last complete line names the last event it
//! holds), so delivery resumes exactly after it and a line is never written twice; a line torn
//! by a crash is cut off on open. Each node writes its own file: it holds what was exported
//! while that node led.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use ledger_sm::types::{EventSeq, SinkId};

use crate::payload::Payload;
use crate::sink::{Sink, SinkError};

/// Bytes read back from the end of the file to find its last line; longer lines than this
/// are not written (a payload is well under 2 KiB).
const TAIL_BYTES: u64 = 64 * 1024;

#[derive(Debug)]
pub struct FileSink {
    id: SinkId,
    path: PathBuf,
    /// The first event the file does not hold, once known.
    next: Option<EventSeq>,
}

impl FileSink {
    #[must_use]
    pub fn new(id: SinkId, path: PathBuf) -> Self {
        Self { id, path, next: None }
    }
}

fn unavailable(path: &Path, error: impl std::fmt::Display) -> SinkError {
    SinkError::Unavailable(format!("{}: {error}", path.display()))
}

/// Cuts off a torn last line and returns the first event the file does not hold.
fn recover(path: &Path) -> Result<Option<EventSeq>, SinkError> {
    let mut file = match std::fs::OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(unavailable(path, error)),
    };
    let length = file.metadata().map_err(|e| unavailable(path, e))?.len();
    let start = length.saturating_sub(TAIL_BYTES);
    let mut tail = Vec::new();
    file.seek(SeekFrom::Start(start)).map_err(|e| unavailable(path, e))?;
    file.read_to_end(&mut tail).map_err(|e| unavailable(path, e))?;
    let complete = tail.iter().rposition(|b| *b == b'\n').map_or(0, |end| end + 1);
    if complete < tail.len() {
        let kept = start + complete as u64;
        tracing::warn!(path = %path.display(), kept, "cutting off a torn last line");
        file.set_len(kept).map_err(|e| unavailable(path, e))?;
        file.sync_all().map_err(|e| unavailable(path, e))?;
    }
    let lines = &tail[..complete];
    let Some(last) = lines.split(|b| *b == b'\n').rfind(|line| !line.is_empty()) else {
        return Ok(None);
    };
    let payload: Payload = serde_json::from_slice(last)
        .map_err(|e| unavailable(path, format!("its last line is not an event: {e}")))?;
    let seq = payload.seq.parse::<u64>().map_err(|e| unavailable(path, e))?;
    Ok(Some(EventSeq(seq + 1)))
}

fn append(path: &Path, lines: &[u8]) -> Result<(), SinkError> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| unavailable(path, e))?;
    file.write_all(lines).map_err(|e| unavailable(path, e))?;
    file.sync_data().map_err(|e| unavailable(path, e))
}

impl Sink for FileSink {
    fn id(&self) -> SinkId {
        self.id
    }

    async fn position(&mut self) -> Result<Option<EventSeq>, SinkError> {
        let path = self.path.clone();
        let next = tokio::task::spawn_blocking(move || recover(&path))
            .await
            .map_err(|e| SinkError::Unavailable(e.to_string()))??;
        self.next = next;
        Ok(next)
    }

    async fn deliver(&mut self, _term: u64, events: &[Payload]) -> Result<(), SinkError> {
        if self.next.is_none() {
            self.position().await?;
        }
        let next = self.next.map_or(0, |next| next.0);
        let mut lines = Vec::new();
        let mut last = None;
        for payload in events.iter().filter(|p| p.seq() >= next) {
            serde_json::to_writer(&mut lines, payload).map_err(|e| unavailable(&self.path, e))?;
            lines.push(b'\n');
            last = Some(payload.seq());
        }
        let Some(last) = last else { return Ok(()) };
        let path = self.path.clone();
        let appended = tokio::task::spawn_blocking(move || append(&path, &lines))
            .await
            .map_err(|e| SinkError::Unavailable(e.to_string()))?;
        if appended.is_err() {
            // Part of the write may have landed: read the position back before the retry.
            self.next = None;
        } else {
            self.next = Some(EventSeq(last + 1));
        }
        appended
    }
}
