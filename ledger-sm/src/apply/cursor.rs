//! Sync-out cursors: how far each sink has taken the outbox. They move only forward, only for
//! the newest leader's exporter, and never past the last event; the lowest of them is where the
//! outbox starts (`Context::finish` compacts below it).

use super::Context;
use crate::command::CursorCommand;
use crate::result::CursorResult;
use crate::types::Cursor;

impl Context {
    pub(crate) fn cursor(&mut self, command: &CursorCommand) -> CursorResult {
        let sink = command.sink();
        if !sink.is_valid() {
            return CursorResult::SinkInvalid;
        }
        let (next, term) = match *command {
            CursorCommand::Forget { .. } => {
                if self.cursors.contains_key(&sink) {
                    self.cursor_set(sink, None);
                }
                return CursorResult::Ok;
            }
            CursorCommand::Advance { next, term, .. } => (next, term),
        };
        if next > self.meta.event_seq_next {
            return CursorResult::CursorBeyondEvents;
        }
        if next < self.meta.events_first {
            return CursorResult::CursorBelowOutbox;
        }
        if let Some(cursor) = self.cursors.get(&sink) {
            if term < cursor.term {
                return CursorResult::TermStale;
            }
            if next < cursor.next {
                return CursorResult::CursorBehind;
            }
            if next == cursor.next && term == cursor.term {
                return CursorResult::Ok;
            }
        }
        let updated_at = self.timestamp_next();
        self.cursor_set(sink, Some(Cursor { sink, next, term, updated_at }));
        CursorResult::Ok
    }
}
