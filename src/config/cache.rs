//! The cache of resolved USTs in front of PostgreSQL (`store::cache`): how many and how long.

use std::time::Duration;

use clap::Args;

use super::duration;
use crate::store::cache::AuthCacheSettings;

/// Past this an entry's age is no bound on staleness worth the name; moka itself refuses
/// 1,000 years.
const MAX_TTL: Duration = Duration::from_secs(3600);

#[derive(Clone, Debug, Args)]
pub struct CacheConfig {
    /// PostgreSQL: longest a resolved UST is served from memory; 0 = no cache.
    #[arg(long = "auth-cache-ttl", env = "SSOD_AUTH_CACHE_TTL", default_value = "10s", value_parser = duration, global = true)]
    pub ttl: Duration,
    /// PostgreSQL: resolved USTs kept in memory; 0 = no cache.
    #[arg(
        long = "auth-cache-capacity",
        env = "SSOD_AUTH_CACHE_CAPACITY",
        default_value_t = 100_000,
        global = true
    )]
    pub capacity: u64,
}

impl CacheConfig {
    /// The cache's bounds; `None` when it is turned off.
    pub fn settings(&self) -> Result<Option<AuthCacheSettings>, String> {
        if self.ttl > MAX_TTL {
            return Err(format!(
                "SSOD_AUTH_CACHE_TTL is at most {}",
                humantime::format_duration(MAX_TTL)
            ));
        }
        if self.ttl.is_zero() || self.capacity == 0 {
            return Ok(None);
        }
        Ok(Some(AuthCacheSettings {
            capacity: self.capacity,
            ttl: self.ttl,
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn zero_turns_the_cache_off_and_a_day_is_refused() {
        let mut config = Config::defaults().cache;
        assert_eq!(
            config.settings().unwrap(),
            Some(AuthCacheSettings {
                capacity: 100_000,
                ttl: Duration::from_secs(10)
            })
        );
        config.ttl = Duration::ZERO;
        assert_eq!(config.settings().unwrap(), None);
        config.ttl = Duration::from_secs(10);
        config.capacity = 0;
        assert_eq!(config.settings().unwrap(), None);
        config.ttl = Duration::from_secs(86_400);
        assert!(config.settings().is_err());
    }
}
