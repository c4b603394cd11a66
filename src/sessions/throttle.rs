//! Per-endpoint request rate limit (token bucket), as the service's invocations-per-second quota.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Instant;

pub struct Throttle {
    per_second: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Throttle {
    /// `per_second == 0` disables throttling.
    pub fn new(per_second: u32) -> Throttle {
        Throttle { per_second: per_second as f64, buckets: Mutex::new(HashMap::new()) }
    }

    /// Take one token for `key`; false when the bucket is empty.
    pub fn admit(&self, key: &str) -> bool {
        if self.per_second <= 0.0 {
            return true;
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock();
        let (tokens, at) = buckets.entry(key.to_string()).or_insert((self.per_second, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.per_second);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_of_the_rate_then_refuses() {
        let t = Throttle::new(5);
        assert_eq!((0..10).filter(|_| t.admit("ep")).count(), 5);
        assert!(t.admit("other"), "buckets are per endpoint");
        assert!(Throttle::new(0).admit("ep"));
    }
}
