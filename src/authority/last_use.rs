//! Last-use times, collected in memory on the verification path and written to the store in
//! batches: a verification never costs a database write.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::domain::{Timestamp, TokenId};

/// Pending last-use times, newest per token.
#[derive(Default)]
pub struct LastUseRecorder {
    pending: Mutex<HashMap<TokenId, Timestamp>>,
}

impl LastUseRecorder {
    pub fn record(&self, token: &TokenId, at: Timestamp) {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match pending.get_mut(token) {
            Some(previous) if *previous >= at => {}
            Some(previous) => *previous = at,
            None => {
                pending.insert(token.clone(), at);
            }
        }
    }

    /// How many tokens have a use pending.
    pub fn len(&self) -> usize {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    /// Takes everything pending, leaving the recorder empty.
    pub fn drain(&self) -> Vec<(TokenId, Timestamp)> {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        pending.drain().collect()
    }

    /// Puts back uses a failed flush could not write, keeping newer ones recorded since.
    pub fn restore(&self, uses: Vec<(TokenId, Timestamp)>) {
        for (token, at) in uses {
            self.record(&token, at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::now;
    use chrono::Duration;

    #[test]
    fn keeps_the_newest_use_per_token() {
        let recorder = LastUseRecorder::default();
        let token = TokenId::generate();
        let t = now();
        recorder.record(&token, t);
        recorder.record(&token, t - Duration::seconds(5));
        recorder.record(&TokenId::generate(), t);
        let mut drained = recorder.drain();
        drained.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(drained.len(), 2);
        assert!(drained.iter().any(|(id, at)| *id == token && *at == t));
        assert!(recorder.drain().is_empty());
    }

    #[test]
    fn restore_does_not_overwrite_newer_uses() {
        let recorder = LastUseRecorder::default();
        let token = TokenId::generate();
        let t = now();
        recorder.record(&token, t);
        recorder.restore(vec![(token.clone(), t - Duration::seconds(1))]);
        assert_eq!(recorder.drain(), vec![(token, t)]);
    }
}
