//! When a transiently failed message comes back (contract section 4).
//!
//! Exponential with half jitter: retries of many tickets that failed together (a service
//! outage) spread out instead of arriving as one wave when the service recovers, while
//! each still waits at least half its nominal delay.

use refund_shared::queue::MAX_VISIBILITY_TIMEOUT_S;

/// The visibility timeout, in whole seconds, after the `receive_count`-th delivery failed
/// transiently:
/// `d = min(max_s, base_s * 2^(n-1))`, `ceil(d/2 + uniform(0, d/2))`, within 1..=43200.
///
/// `unit` is the uniform draw in `[0, 1)`, injected so the formula is tested exactly;
/// values outside that range are clamped. A receive count of 0 (unknown) counts as 1.
pub fn retry_visibility_s(receive_count: u32, base_s: u32, max_s: u32, unit: f64) -> u32 {
    let exponent = receive_count.saturating_sub(1).min(63);
    let factor = 1u64 << exponent;
    let nominal = u64::from(base_s)
        .saturating_mul(factor)
        .min(u64::from(max_s));
    // Exact in f64: nominal <= u32::MAX.
    let half = nominal as f64 / 2.0;
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let seconds = (half + unit * half).ceil();
    // In range after the clamp, so the cast cannot truncate.
    seconds.clamp(1.0, f64::from(MAX_VISIBILITY_TIMEOUT_S)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_formula_at_the_defaults() {
        // base 5, max 900: d = 5, 10, 20, 40, ... capped at 900.
        assert_eq!(retry_visibility_s(1, 5, 900, 0.0), 3); // ceil(2.5)
        assert_eq!(retry_visibility_s(1, 5, 900, 0.999_999), 5);
        assert_eq!(retry_visibility_s(2, 5, 900, 0.0), 5);
        assert_eq!(retry_visibility_s(2, 5, 900, 0.5), 8); // ceil(5 + 2.5)
        assert_eq!(retry_visibility_s(3, 5, 900, 0.0), 10);
        assert_eq!(retry_visibility_s(8, 5, 900, 0.0), 320); // d = 640
        assert_eq!(retry_visibility_s(9, 5, 900, 0.0), 450); // d capped at 900
        assert_eq!(retry_visibility_s(14, 5, 900, 0.999_999), 900);
    }

    #[test]
    fn whole_seconds_within_one_and_twelve_hours() {
        assert_eq!(retry_visibility_s(1, 1, 1, 0.0), 1); // ceil(0.5)
        assert_eq!(retry_visibility_s(0, 1, 5, 0.0), 1); // unknown count counts as 1
        assert_eq!(
            retry_visibility_s(u32::MAX, 43_200, 43_200, 0.999_999),
            43_200
        );
        assert_eq!(retry_visibility_s(64, 5, 900, f64::NAN), 450);
        assert_eq!(retry_visibility_s(3, 5, 900, 7.0), 20);
    }

    #[test]
    fn every_draw_stays_within_half_and_whole_nominal_delay() {
        for n in 1..=20 {
            let nominal = (5u64 << (n - 1)).min(900) as f64;
            for step in 0..100 {
                let seconds = f64::from(retry_visibility_s(n, 5, 900, f64::from(step) / 100.0));
                assert!(
                    seconds >= (nominal / 2.0).ceil() && seconds <= nominal,
                    "n={n} step={step}: {seconds}"
                );
            }
        }
    }
}
