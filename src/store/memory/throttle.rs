//! Failed-login counters in memory: both counters of a claim are checked and counted under
//! the store's one lock, so concurrent claims are admitted one at a time.

use std::{collections::HashMap, time::SystemTime};

use async_trait::async_trait;

use super::MemoryStore;
use crate::{
    domain::{
        AddressClaim, ClaimLogin, ForgetLoginFailures, LoginClaim, ThrottleKind, ThrottleLimits,
        Write,
    },
    store::{StoreResult, ThrottleStore},
};

/// The counters, by username key and by address.
#[derive(Default)]
pub(super) struct Throttle {
    users: HashMap<String, UserFailures>,
    addresses: HashMap<String, AddressFailures>,
}

#[derive(Clone, Copy)]
struct UserFailures {
    /// Failures since the last lockout (or ever, before the first).
    failures: u32,
    /// Lockouts so far: each one doubles the next.
    lockouts: u32,
    locked_until: Option<SystemTime>,
    /// From when the reset time counts.
    last_failure: SystemTime,
}

#[derive(Clone, Copy)]
struct AddressFailures {
    failures: u32,
    window_start: SystemTime,
    locked_until: Option<SystemTime>,
}

fn locked(until: Option<SystemTime>, now: SystemTime) -> Option<SystemTime> {
    until.filter(|until| *until > now)
}

impl Throttle {
    /// The address's counter as of `now`: a new window once the last one has passed. Refused
    /// (and, on reaching the limit, locked out from `now`) or ready to count one more.
    fn address(
        &mut self,
        address: &str,
        limits: &ThrottleLimits,
        now: SystemTime,
    ) -> Result<AddressFailures, SystemTime> {
        let fresh = AddressFailures {
            failures: 0,
            window_start: now,
            locked_until: None,
        };
        let current = self.addresses.get(address).copied();
        if let Some(until) = current.and_then(|current| locked(current.locked_until, now)) {
            return Err(until);
        }
        let current = current
            .filter(|current| {
                !limits.address_forgotten(current.window_start, current.locked_until, now)
            })
            .unwrap_or(fresh);
        if current.failures >= limits.address_max_failures {
            let until = now + limits.lockout;
            self.addresses.insert(
                address.to_owned(),
                AddressFailures {
                    locked_until: Some(until),
                    ..fresh
                },
            );
            return Err(until);
        }
        Ok(current)
    }

    /// The sweep: deletes the counters `limits` say are forgotten at `now`; how many.
    pub(super) fn purge(&mut self, limits: &ThrottleLimits, now: SystemTime) -> u64 {
        let before = self.users.len() + self.addresses.len();
        self.users
            .retain(|_, user| !limits.user_forgotten(user.last_failure, user.locked_until, now));
        self.addresses.retain(|_, address| {
            !limits.address_forgotten(address.window_start, address.locked_until, now)
        });
        (before - self.users.len() - self.addresses.len()) as u64
    }
}

#[async_trait]
impl ThrottleStore for MemoryStore {
    async fn claim_login(&self, write: Write<ClaimLogin>) -> StoreResult<LoginClaim> {
        let Write {
            now,
            command:
                ClaimLogin {
                    user_key,
                    address,
                    limits,
                },
            context,
        } = write;
        let mut state = self.lock()?;
        let throttle = &mut state.throttle;
        let counted_address = match &address {
            Some(address) => match throttle.address(address, &limits, now) {
                Ok(counter) => {
                    // A window that starts now starts whatever the user's answer, as in the
                    // PostgreSQL store, which counts the address first and gives it back.
                    throttle.addresses.insert(address.clone(), counter);
                    Some(address)
                }
                Err(until) => {
                    return Ok(LoginClaim::Refused {
                        kind: ThrottleKind::Address,
                        until,
                    });
                }
            },
            None => None,
        };
        let mut user = throttle
            .users
            .get(&user_key)
            .copied()
            .filter(|user| !limits.user_forgotten(user.last_failure, user.locked_until, now))
            .unwrap_or(UserFailures {
                failures: 0,
                lockouts: 0,
                locked_until: None,
                last_failure: now,
            });
        if let Some(until) = locked(user.locked_until, now) {
            return Ok(LoginClaim::Refused {
                kind: ThrottleKind::User,
                until,
            });
        }
        user.failures += 1;
        user.last_failure = now;
        let mut locked_out = None;
        if user.failures >= limits.user_max_failures {
            let until = now + limits.user_lockout(user.lockouts);
            user.locked_until = Some(until);
            user.lockouts = user.lockouts.saturating_add(1);
            user.failures = 0;
            locked_out = Some(until);
        }
        throttle.users.insert(user_key.clone(), user);
        let claim = counted_address
            .and_then(|address| Some((address, throttle.addresses.get_mut(address)?)))
            .map(|(address, counter)| {
                counter.failures += 1;
                AddressClaim {
                    address: address.clone(),
                    window_start: counter.window_start,
                }
            });
        // A lockout of a username that names a user is that user's `user.locked_out`.
        if let Some(until) = locked_out
            && let Some(user) = state.usernames.get(&user_key).copied()
        {
            let events = ClaimLogin::lockout_template()
                .into_iter()
                .map(|template| {
                    let lockout = until.duration_since(now).unwrap_or_default();
                    template
                        .user(Some(user))
                        .detail("lockout_secs", lockout.as_secs())
                })
                .collect();
            state.events.record(now, &context, events);
        }
        Ok(LoginClaim::Admitted { address: claim })
    }

    async fn forget_login_failures(&self, write: Write<ForgetLoginFailures>) -> StoreResult<()> {
        let ForgetLoginFailures { user_key, address } = write.command;
        let mut state = self.lock()?;
        let throttle = &mut state.throttle;
        throttle.users.remove(&user_key);
        if let Some(claim) = address
            && let Some(counter) = throttle.addresses.get_mut(&claim.address)
            && counter.window_start == claim.window_start
        {
            counter.failures = counter.failures.saturating_sub(1);
        }
        Ok(())
    }
}
