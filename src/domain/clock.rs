//! The authority's clock: the wall clock, or, for tests, the wall clock moved forward by
//! hand, so that a test of an expiry or a grace period advances time instead of sleeping
//! until the deadline passes.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use super::{Timestamp, truncate_to_micros};

/// Where the authority reads the time. Cheap to clone; clones of an adjustable clock move
/// together.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// How far ahead of the wall clock this clock runs, in microseconds; None: the wall
    /// clock itself.
    ahead_micros: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The wall clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// The wall clock, until [`Clock::advance`] moves it forward. For tests only.
    #[doc(hidden)]
    pub fn adjustable() -> Self {
        Self {
            ahead_micros: Some(Arc::default()),
        }
    }

    /// The current time, at the microsecond precision the stores keep.
    pub fn now(&self) -> Timestamp {
        let now = truncate_to_micros(chrono::Utc::now());
        // On the hot path (every verification): the wall clock costs no date arithmetic.
        match self
            .ahead_micros
            .as_ref()
            .map(|ahead| ahead.load(Ordering::Acquire))
        {
            None | Some(0) => now,
            Some(ahead) => now
                .checked_add_signed(chrono::Duration::microseconds(ahead))
                .unwrap_or(now),
        }
    }

    /// Moves an adjustable clock forward by `by` (the wall clock cannot be moved: nothing
    /// happens). For tests only.
    #[doc(hidden)]
    pub fn advance(&self, by: std::time::Duration) {
        if let Some(ahead) = &self.ahead_micros {
            let micros = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
            let _ = ahead.fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
                Some(current.saturating_add(micros))
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adjustable_clock_moves_forward_with_its_clones() {
        let clock = Clock::adjustable();
        let clone = clock.clone();
        let before = clock.now();
        clone.advance(std::time::Duration::from_secs(3600));
        let after = clock.now();
        assert!(after - before >= chrono::Duration::seconds(3600));
        let wall = Clock::system();
        wall.advance(std::time::Duration::from_secs(3600));
        assert!(wall.now() < after);
    }
}
