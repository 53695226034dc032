//! The deadline table: calls ordered by (deadline, stream id), so expiries at
//! one instant come out in a deterministic order.

use std::time::Instant;

use crate::sorted::SortedSet;
use crate::stream::StreamId;

/// The earlier of two optional deadlines.
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    set: SortedSet<(Instant, StreamId)>,
}

impl Deadlines {
    pub(crate) fn insert(&mut self, at: Instant, id: StreamId) {
        self.set.insert((at, id), ());
    }

    pub(crate) fn remove(&mut self, at: Instant, id: StreamId) {
        self.set.remove(&(at, id));
    }

    pub(crate) fn next(&self) -> Option<Instant> {
        self.set.first().map(|((at, _), ())| *at)
    }

    /// Removes and returns the first entry due at `now` (deadline <= now).
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<StreamId> {
        match self.set.first() {
            Some(&((at, id), ())) if at <= now => {
                self.set.remove(&(at, id));
                Some(id)
            }
            _ => None,
        }
    }

    pub(crate) fn clear(&mut self) {
        self.set.clear();
    }
}
