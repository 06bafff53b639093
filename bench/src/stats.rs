//! Order statistics of a run. The fastest run is the one with the least noise (noise only
//! adds), the median the typical one; both are reported.

use std::time::Duration;

use serde::Serialize;

/// A duration in whole microseconds, the unit of every report; saturates rather than
/// wraps for a duration no run reaches (half a million years).
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub min: u64,
    pub median: u64,
    pub p99: u64,
    pub max: u64,
}

impl Summary {
    pub fn of(values: impl IntoIterator<Item = u64>) -> Self {
        let mut sorted: Vec<u64> = values.into_iter().collect();
        sorted.sort_unstable();
        let at = |q: f64| {
            // Nearest rank: the smallest value with at least q of the values at or below it.
            let rank = (q * sorted.len() as f64).ceil() as usize;
            sorted
                .get(rank.saturating_sub(1).min(sorted.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        Self {
            n: sorted.len(),
            min: sorted.first().copied().unwrap_or(0),
            median: at(0.5),
            p99: at(0.99),
            max: sorted.last().copied().unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Summary;

    #[test]
    fn nearest_rank_statistics() {
        let s = Summary::of((1..=100).rev());
        assert_eq!((s.n, s.min, s.median, s.p99, s.max), (100, 1, 50, 99, 100));
        let odd = Summary::of([5, 1, 3]);
        assert_eq!((odd.min, odd.median, odd.max), (1, 3, 5));
        assert_eq!(Summary::of([]).n, 0);
    }
}
