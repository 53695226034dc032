//! Per-stream receive queues: messages that arrived on a stream and were not
//! yet taken by the application.
//!
//! ttrpc has no flow-control frames, so two bounds keep a connection's memory
//! in check without stalling the whole connection for one slow consumer:
//!
//! - **per stream**: a stream holding [`Config::stream_queue_len`] or more
//!   undelivered messages is *full*. It keeps receiving (nothing is dropped
//!   while the consumer might still catch up), but if it stays full for
//!   [`Config::stream_stall_timeout`] it fails with `ResourceExhausted` and
//!   its queued messages are freed. Go ttrpc 1.2 has the same bound (64
//!   messages, 1 s), except that Go's reader blocks the whole connection
//!   while it waits; here the connection keeps being read for every other
//!   call.
//! - **per connection**: undelivered stream messages of all streams together
//!   are bounded by [`Config::max_stream_bytes`]. At that bound the
//!   connection stops decoding (as it does at its transmit bound) and puts
//!   the stream holding the most bytes on the stall timer; it resumes as soon
//!   as consumers take messages, or when the stall timeout fails that stream.
//!   A peer flooding streams whose consumers lag can therefore delay other
//!   calls by at most the stall timeout.
//!
//! [`Config::stream_queue_len`]: crate::Config::stream_queue_len
//! [`Config::stream_stall_timeout`]: crate::Config::stream_stall_timeout
//! [`Config::max_stream_bytes`]: crate::Config::max_stream_bytes

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::code::{Code, Status};
use crate::config::Config;
use crate::error::{CallError, ShowDuration};
use crate::sorted::{SortedMap, SortedSet};
use crate::stream::StreamId;

/// One thing received on a stream, in order: messages, then one `End`.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    /// A message: the serialized method message (a slice of the receive
    /// buffer, not a copy).
    Message(Bytes),
    /// Nothing more will arrive. `Ok` when the peer finished sending
    /// normally; `Err` when the stream failed (a status from the peer, its
    /// deadline, a full receive queue, or the end of the connection).
    End(Result<(), CallError>),
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<StreamItem>,
    /// Messages in `items` (the `End` item does not count).
    messages: usize,
    /// Payload bytes of those messages.
    bytes: usize,
    /// When the stall timer fails this stream, if it runs.
    stall_due: Option<Instant>,
    /// A "readable" notification is outstanding: no new one until the
    /// application has seen the queue empty.
    notified: bool,
    /// `End` was pushed: nothing more is accepted.
    ended: bool,
}

/// Every stream's receive queue on one connection, with both bounds.
#[derive(Debug)]
pub(crate) struct RecvQueues {
    queues: SortedMap<StreamId, Queue>,
    stalls: SortedSet<(Instant, StreamId)>,
    /// Payload bytes queued on all streams.
    bytes: usize,
    max_messages: usize,
    max_bytes: usize,
    stall_timeout: Duration,
    /// The latest time the connection was told; stalls start from it.
    now: Option<Instant>,
}

/// Whether the application should be told that a stream has items.
pub(crate) type Notify = bool;

impl RecvQueues {
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            queues: SortedMap::new(),
            stalls: SortedSet::new(),
            bytes: 0,
            max_messages: config.stream_queue_len.max(1),
            max_bytes: config.max_stream_bytes,
            stall_timeout: config.stream_stall_timeout,
            now: None,
        }
    }

    pub(crate) fn set_now(&mut self, now: Instant) {
        self.now = Some(self.now.map_or(now, |t| t.max(now)));
    }

    /// Creates an empty queue for a new stream.
    pub(crate) fn open(&mut self, id: StreamId) {
        self.queues.insert_absent(id, Queue::default);
    }

    /// Appends a message. Ignored once the stream ended.
    pub(crate) fn push_message(&mut self, id: StreamId, payload: Bytes) -> Notify {
        let Some(q) = self.queues.get_mut(&id) else {
            return false;
        };
        if q.ended {
            return false;
        }
        q.messages += 1;
        q.bytes += payload.len();
        self.bytes += payload.len();
        q.items.push_back(StreamItem::Message(payload));
        let full = q.messages >= self.max_messages;
        let notify = !std::mem::replace(&mut q.notified, true);
        if full {
            self.start_stall(id);
        }
        notify
    }

    /// Appends the end of the stream, keeping the messages before it.
    /// Ignored once the stream ended.
    pub(crate) fn push_end(&mut self, id: StreamId, result: Result<(), CallError>) -> Notify {
        let Some(q) = self.queues.get_mut(&id) else {
            return false;
        };
        if q.ended {
            return false;
        }
        q.ended = true;
        q.items.push_back(StreamItem::End(result));
        // A stall timer keeps running: the messages before the end are
        // still held.
        !std::mem::replace(&mut q.notified, true)
    }

    /// Fails a stream at once: its queued messages are dropped (freeing
    /// their memory) and only the error is left to deliver, replacing any
    /// end it already had (its messages are lost, so it did not end well).
    pub(crate) fn fail(&mut self, id: StreamId, error: CallError) -> Notify {
        let Some(q) = self.queues.get_mut(&id) else {
            return false;
        };
        self.bytes -= q.bytes;
        q.bytes = 0;
        q.messages = 0;
        q.items.clear();
        q.ended = false;
        self.push_end(id, Err(error))
    }

    /// Takes the next item. `None` when nothing is queued (or the stream is
    /// unknown); the next arrival then notifies again. After `End` the
    /// queue is gone.
    pub(crate) fn pop(&mut self, id: StreamId) -> Option<StreamItem> {
        let q = self.queues.get_mut(&id)?;
        let Some(item) = q.items.pop_front() else {
            q.notified = false;
            return None;
        };
        match &item {
            StreamItem::Message(m) => {
                q.messages -= 1;
                q.bytes -= m.len();
                self.bytes -= m.len();
                if q.messages < self.max_messages && self.bytes < self.max_bytes {
                    self.stop_stall(id);
                }
            }
            StreamItem::End(_) => {
                self.remove(id);
            }
        }
        Some(item)
    }

    /// Forgets a stream's queue and whatever it holds.
    pub(crate) fn remove(&mut self, id: StreamId) {
        self.stop_stall(id);
        if let Some(q) = self.queues.remove(&id) {
            self.bytes -= q.bytes;
        }
    }

    pub(crate) fn contains(&self, id: StreamId) -> bool {
        self.queues.contains_key(&id)
    }

    /// Whether the connection is at its byte bound: decode nothing more
    /// until consumers take messages. Puts the stream holding the most
    /// bytes on the stall timer, so the pause lasts at most the timeout.
    pub(crate) fn at_bound(&mut self) -> bool {
        if self.bytes == 0 || self.bytes < self.max_bytes {
            return false;
        }
        let hog = self
            .queues
            .iter()
            .filter(|(_, q)| q.bytes > 0)
            .max_by(|a, b| a.1.bytes.cmp(&b.1.bytes).then(b.0.cmp(a.0)))
            .map(|(id, _)| *id);
        if let Some(id) = hog {
            self.start_stall(id);
        }
        true
    }

    fn start_stall(&mut self, id: StreamId) {
        let (Some(now), Some(q)) = (self.now, self.queues.get_mut(&id)) else {
            return;
        };
        if q.stall_due.is_none() {
            // An overflowing deadline means the stall never fails the stream.
            if let Some(due) = now.checked_add(self.stall_timeout) {
                q.stall_due = Some(due);
                self.stalls.insert((due, id), ());
            }
        }
    }

    fn stop_stall(&mut self, id: StreamId) {
        if let Some(q) = self.queues.get_mut(&id) {
            if let Some(due) = q.stall_due.take() {
                self.stalls.remove(&(due, id));
            }
        }
    }

    /// When the next stall fails a stream.
    pub(crate) fn next_stall(&self) -> Option<Instant> {
        self.stalls.first().map(|((at, _), ())| *at)
    }

    /// Fails the next stream whose stall timer is due at `now`: its
    /// messages are dropped and `End(ResourceExhausted)` is queued. Returns
    /// its id and whether to notify.
    pub(crate) fn expire_stall(&mut self, now: Instant) -> Option<(StreamId, Notify)> {
        let &((at, id), ()) = self.stalls.first()?;
        if at > now {
            return None;
        }
        self.stop_stall(id);
        let status = stall_status(self.stall_timeout);
        Some((id, self.fail(id, CallError::Status(status))))
    }

    /// Undelivered payload bytes on all streams.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

/// The status a stream fails with when its consumer does not keep up.
pub(crate) fn stall_status(timeout: Duration) -> Status {
    Status::new(
        Code::ResourceExhausted,
        format!(
            "stream receive queue full: the receiver took no message for {}",
            ShowDuration(timeout)
        ),
    )
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // one real instant as the test's epoch
mod tests {
    use super::*;

    fn queues(len: usize, bytes: usize) -> RecvQueues {
        let config = Config::default()
            .with_stream_queue_len(len)
            .with_max_stream_bytes(bytes);
        RecvQueues::new(&config)
    }

    #[test]
    fn notifies_once_until_drained() {
        let mut q = queues(4, 1000);
        q.set_now(Instant::now());
        let id = StreamId::new(1);
        q.open(id);
        assert!(q.push_message(id, Bytes::from_static(b"a")));
        assert!(!q.push_message(id, Bytes::from_static(b"b")));
        assert_eq!(
            q.pop(id),
            Some(StreamItem::Message(Bytes::from_static(b"a")))
        );
        assert!(
            !q.push_message(id, Bytes::from_static(b"c")),
            "not yet seen empty"
        );
        assert!(q.pop(id).is_some() && q.pop(id).is_some());
        assert_eq!(q.pop(id), None);
        assert!(q.push_end(id, Ok(())));
        assert_eq!(q.pop(id), Some(StreamItem::End(Ok(()))));
        assert!(!q.contains(id) && q.bytes() == 0);
    }

    #[test]
    fn a_full_stream_fails_after_the_stall_timeout_unless_drained() {
        let t0 = Instant::now();
        let mut q = queues(2, 1000);
        q.set_now(t0);
        let (a, b) = (StreamId::new(1), StreamId::new(3));
        q.open(a);
        q.open(b);
        for _ in 0..3 {
            q.push_message(a, Bytes::from_static(b"xx"));
            q.push_message(b, Bytes::from_static(b"yy"));
        }
        let due = t0 + Duration::from_secs(1);
        assert_eq!(q.next_stall(), Some(due));
        // b's consumer catches up in time.
        q.pop(b);
        q.pop(b);
        assert_eq!(q.expire_stall(due - Duration::from_millis(1)), None);
        let (id, _) = q.expire_stall(due).unwrap();
        assert_eq!(id, a);
        assert_eq!(q.expire_stall(due), None, "b left the stall");
        assert!(matches!(
            q.pop(a),
            Some(StreamItem::End(Err(CallError::Status(s)))) if s.code == Code::ResourceExhausted
        ));
        assert_eq!(q.bytes(), 2, "a's bytes freed, b's one left");
    }

    #[test]
    fn at_the_byte_bound_the_biggest_stream_is_stalled() {
        let t0 = Instant::now();
        let mut q = queues(100, 10);
        q.set_now(t0);
        let (a, b) = (StreamId::new(1), StreamId::new(3));
        q.open(a);
        q.open(b);
        q.push_message(a, Bytes::from_static(b"123"));
        q.push_message(b, Bytes::from_static(b"1234567"));
        assert!(q.at_bound());
        assert_eq!(
            q.expire_stall(t0 + Duration::from_secs(1)).map(|x| x.0),
            Some(b)
        );
        assert!(!q.at_bound());
    }
}
