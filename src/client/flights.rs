//! Single flight: concurrent verifications of one token that miss the cache share one
//! VerifyToken call, so that a burst of requests carrying the same token (or an attacker
//! replaying one) costs the authority one call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::VerifyError;
use super::answer::Answer;
use super::metrics::VerifierMetrics;
use crate::domain::SecretHash;

/// One VerifyToken call that concurrent verifications of the same token share.
pub(super) type Flight = Arc<tokio::sync::OnceCell<Result<(Arc<Answer>, u64), VerifyError>>>;
/// The calls in flight, by the token's hash and the revision they ask from.
#[derive(Default)]
pub(super) struct Flights(Mutex<HashMap<(SecretHash, u64), Flight>>);

/// Removes its flight from the map when the call that started it ends (or is dropped), so
/// that a later verification asks again.
pub(super) struct FlightGuard<'a> {
    flights: &'a Flights,
    key: (SecretHash, u64),
    flight: Flight,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let mut flights = self
            .flights
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if flights
            .get(&self.key)
            .is_some_and(|flight| Arc::ptr_eq(flight, &self.flight))
        {
            flights.remove(&self.key);
        }
    }
}

impl Flights {
    /// The call in flight for `key`, joined; or a new one, with the guard that ends it.
    pub(super) fn join(
        &self,
        key: (SecretHash, u64),
        metrics: &VerifierMetrics,
    ) -> (Flight, Option<FlightGuard<'_>>) {
        let mut flights = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(flight) = flights.get(&key) {
            metrics.coalesced.increment(1);
            return (flight.clone(), None);
        }
        let flight = Flight::default();
        flights.insert(key, flight.clone());
        let guard = FlightGuard {
            flights: self,
            key,
            flight: flight.clone(),
        };
        (flight, Some(guard))
    }
}
