//! A limit on failed authentications that cost a database read, per client address (an
//! IPv6 client's /64) and per presented credential.
//!
//! Each such failure (a credential no cache could answer, read from the database and found
//! unknown, revoked, expired …) spends one cell of its address's and its credential's
//! allowance (a GCRA limiter of `governor`: so many per second, with a burst of
//! [`BURST_SECONDS`] seconds' worth). An address or credential past its allowance is refused
//! with RESOURCE_EXHAUSTED for [`PENALTY`] before its next read of the database; its next
//! failure after that refuses it again. So one address that forges tokens costs the
//! database at most its allowance of reads a second. Answers from memory (a cached
//! credential, good or bad, a hash remembered as unknown, a malformed one) cost nothing and
//! are neither counted nor refused: a good client whose credential is cached keeps working
//! beside an attacker on the same address, and presenting a victim's credential from the
//! wrong network (answered from the cache) cannot lock the victim out.
//!
//! Behind a proxy that hides client addresses every client shares the proxy's address:
//! raise the limit there, or turn it off (0).
//!
//! The gateway edge uses the same limit on the invalid tokens a client address presents
//! (`gateway/decision.rs`), by address only.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::domain::{SecretHash, address_group};

/// The burst a peer or credential may fail in at once: this many seconds of its rate.
const BURST_SECONDS: u32 = 5;
/// How long a peer or credential past its allowance is refused.
const PENALTY: Duration = Duration::from_secs(1);
/// How many penalized peers and credentials are remembered at most.
const PENALIZED_CAPACITY: u64 = 100_000;

/// Why an authentication is refused before it is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Peer,
    Credential,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Peer => "too many failed authentications from this address: retry in a second",
            Refusal::Credential => {
                "too many failed authentications with this credential: retry in a second"
            }
        }
    }
}

pub(crate) struct FailedAuthentications {
    /// None: no limit.
    limits: Option<Limits>,
}

struct Limits {
    by_peer: DefaultKeyedRateLimiter<IpAddr>,
    by_credential: DefaultKeyedRateLimiter<SecretHash>,
    penalized_peers: moka::sync::Cache<IpAddr, ()>,
    penalized_credentials: moka::sync::Cache<SecretHash, ()>,
    /// Until when (microseconds since `epoch`) any penalty may still run: while none can,
    /// a good authentication costs one atomic load here.
    penalties_until: AtomicI64,
    epoch: Instant,
}

impl FailedAuthentications {
    /// At most `per_second` failures a second per peer address and per credential (0: no
    /// limit).
    pub fn new(per_second: u32) -> Self {
        let limits = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(rate.get().saturating_mul(BURST_SECONDS)).unwrap_or(rate);
            let quota = Quota::per_second(rate).allow_burst(burst);
            Limits {
                by_peer: RateLimiter::keyed(quota),
                by_credential: RateLimiter::keyed(quota),
                penalized_peers: penalty_box(),
                penalized_credentials: penalty_box(),
                penalties_until: AtomicI64::new(0),
                epoch: Instant::now(),
            }
        });
        Self { limits }
    }

    /// Whether an authentication from `peer` with the credential hashed as `credential`
    /// is refused without being tried.
    pub fn refusal(
        &self,
        peer: Option<IpAddr>,
        credential: Option<&SecretHash>,
    ) -> Option<Refusal> {
        let limits = self.limits.as_ref()?;
        if limits.micros_now() > limits.penalties_until.load(Ordering::Relaxed) {
            return None;
        }
        if peer.is_some_and(|peer| limits.penalized_peers.contains_key(&address_group(peer))) {
            return Some(Refusal::Peer);
        }
        if credential.is_some_and(|hash| limits.penalized_credentials.contains_key(hash)) {
            return Some(Refusal::Credential);
        }
        None
    }

    /// Spends a failure of `peer` and `credential`; either past its allowance is refused
    /// for a while.
    pub fn record_failure(&self, peer: Option<IpAddr>, credential: Option<&SecretHash>) {
        let Some(limits) = &self.limits else {
            return;
        };
        let mut penalized = false;
        if let Some(peer) = peer.map(address_group)
            && limits.by_peer.check_key(&peer).is_err()
        {
            limits.penalized_peers.insert(peer, ());
            penalized = true;
        }
        if let Some(hash) = credential
            && limits.by_credential.check_key(hash).is_err()
        {
            limits.penalized_credentials.insert(*hash, ());
            penalized = true;
        }
        if penalized {
            crate::metrics::record_authentication_penalty();
            let until = limits
                .micros_now()
                .saturating_add(i64::try_from(PENALTY.as_micros()).unwrap_or(i64::MAX));
            limits.penalties_until.fetch_max(until, Ordering::Relaxed);
        }
    }

    /// Forgets the allowances of peers and credentials that have not failed lately, so
    /// that memory follows the attack, not its history. Called periodically.
    pub fn forget_idle(&self) {
        if let Some(limits) = &self.limits {
            limits.by_peer.retain_recent();
            limits.by_peer.shrink_to_fit();
            limits.by_credential.retain_recent();
            limits.by_credential.shrink_to_fit();
        }
    }
}

/// Who is refused for a while: entries live [`PENALTY`].
fn penalty_box<K: std::hash::Hash + Eq + Send + Sync + 'static>() -> moka::sync::Cache<K, ()> {
    moka::sync::Cache::builder()
        .max_capacity(PENALIZED_CAPACITY)
        .time_to_live(PENALTY)
        .build()
}

impl Limits {
    fn micros_now(&self) -> i64 {
        i64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn a_peer_past_its_allowance_is_refused_and_others_are_not() {
        let limiter = FailedAuthentications::new(2);
        // Burst: 2 a second for 5 seconds' worth.
        for _ in 0..10 {
            assert_eq!(limiter.refusal(peer(1), None), None);
            limiter.record_failure(peer(1), None);
        }
        limiter.record_failure(peer(1), None);
        assert_eq!(limiter.refusal(peer(1), None), Some(Refusal::Peer));
        assert_eq!(limiter.refusal(peer(2), None), None);
        assert_eq!(limiter.refusal(None, None), None);
    }

    #[test]
    fn a_credential_past_its_allowance_is_refused_from_any_peer() {
        let limiter = FailedAuthentications::new(1);
        let hash = crate::domain::TokenSecret::generate().hash();
        for last in 0..6 {
            limiter.record_failure(peer(last), Some(&hash));
        }
        assert_eq!(
            limiter.refusal(peer(200), Some(&hash)),
            Some(Refusal::Credential)
        );
        let other = crate::domain::TokenSecret::generate().hash();
        assert_eq!(limiter.refusal(peer(201), Some(&other)), None);
    }

    #[test]
    fn an_ipv6_client_is_limited_by_its_slash_64() {
        let limiter = FailedAuthentications::new(1);
        let v6 = |last: u16| Some(IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, last]));
        for last in 0..6 {
            limiter.record_failure(v6(last), None);
        }
        assert_eq!(limiter.refusal(v6(999), None), Some(Refusal::Peer));
        let elsewhere = Some(IpAddr::from([0x2001, 0xdb8, 0, 2, 0, 0, 0, 1]));
        assert_eq!(limiter.refusal(elsewhere, None), None);
    }

    #[test]
    fn zero_is_no_limit() {
        let limiter = FailedAuthentications::new(0);
        for _ in 0..1000 {
            limiter.record_failure(peer(1), None);
        }
        assert_eq!(limiter.refusal(peer(1), None), None);
    }
}
