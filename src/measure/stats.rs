//! Statistics over repeated trials: the median, the spread (min to max), the rule that calls a
//! figure noisy, and ratios taken trial by trial.
//!
//! Few trials and no assumed distribution: the median and the range of order statistics. With
//! n trials, the chance that the true median lies outside [min, max] is 2 / 2^n, so the range
//! of 5 trials is a 94% confidence interval for the median (Conover, *Practical
//! Nonparametric Statistics*, 3rd ed., section 3.2), and of 7 trials a 98% one.

use serde::{Deserialize, Serialize};

/// A figure whose trials span more than this fraction of its median, (max - min) / median, is
/// *noisy*: marked `~` in the table and drawn hollow in the chart. Chosen so that two runs
/// on a quiet machine should agree within about 15% on figures that are not noisy.
///
/// # Examples
/// ```
/// use switchboard::measure::{NOISY_SPREAD, Spread};
///
/// let s = Spread::of(&[100.0, 104.0, 96.0, 101.0, 99.0]).unwrap();
/// assert!(s.relative() <= NOISY_SPREAD && !s.is_noisy());
/// ```
pub const NOISY_SPREAD: f64 = 0.25;

/// The median of a figure over trials, and its smallest and largest trial.
///
/// # Examples
/// ```
/// use switchboard::measure::Spread;
///
/// // Streaming MB/s of five trials: two ran with both processes on one core.
/// let s = Spread::of(&[8537.0, 9171.0, 605.0, 8880.0, 640.0]).unwrap();
/// assert_eq!((s.median, s.min, s.max), (8537.0, 605.0, 9171.0));
/// assert!(s.is_noisy()); // the trials disagree: do not trust the median alone
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// The median trial (the mean of the middle two for an even count).
    pub median: f64,
    /// The smallest trial.
    pub min: f64,
    /// The largest trial.
    pub max: f64,
}

impl Spread {
    /// The median and range of `values`, or `None` if there are none (NaNs are left out).
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Some(Spread { median, min: v[0], max: v[n - 1] })
    }

    /// One value, as a spread of no width: a figure from a single trial (or from a report
    /// written before trials were repeated).
    pub fn point(value: f64) -> Spread {
        Spread { median: value, min: value, max: value }
    }

    /// (max - min) / median; infinite for a zero median with any spread.
    ///
    /// # Examples
    /// ```
    /// use switchboard::measure::Spread;
    ///
    /// assert_eq!(Spread::of(&[90.0, 100.0, 110.0]).unwrap().relative(), 0.2);
    /// assert_eq!(Spread::point(0.0).relative(), 0.0);
    /// ```
    pub fn relative(&self) -> f64 {
        let width = self.max - self.min;
        if width == 0.0 { 0.0 } else { width / self.median.abs() }
    }

    /// Whether the trials disagree by more than [`NOISY_SPREAD`].
    pub fn is_noisy(&self) -> bool {
        self.relative() > NOISY_SPREAD
    }

    /// Whether the two ranges share any value.
    ///
    /// # Examples
    /// ```
    /// use switchboard::measure::Spread;
    ///
    /// let a = Spread::of(&[10.0, 11.0, 12.0]).unwrap();
    /// assert!(a.overlaps(&Spread::of(&[11.5, 13.0, 14.0]).unwrap()));
    /// assert!(!a.overlaps(&Spread::point(12.5)));
    /// ```
    pub fn overlaps(&self, other: &Spread) -> bool {
        self.min <= other.max && other.min <= self.max
    }
}

/// Ratios `numerator / denominator` paired by trial number: trial i of a transport over trial
/// i of its raw baseline, measured moments apart, so that drift of the host between trials
/// cancels. Trials present on one side only are left out, as are zero denominators.
///
/// # Examples
/// ```
/// use switchboard::measure::paired_ratios;
///
/// // The host slowed down between trials 1 and 2; both sides felt it, the ratio did not.
/// let transport = [(1, 10.0), (2, 20.0), (3, 11.0)];
/// let raw = [(2, 19.0), (1, 9.5), (3, 10.0)];
/// let r = paired_ratios(&transport, &raw);
/// assert_eq!(r.len(), 3);
/// assert!(r.iter().all(|x| (1.0..1.11).contains(x)));
/// ```
pub fn paired_ratios(numerator: &[(usize, f64)], denominator: &[(usize, f64)]) -> Vec<f64> {
    numerator
        .iter()
        .filter_map(|&(trial, n)| {
            let &(_, d) = denominator.iter().find(|(t, _)| *t == trial)?;
            (d != 0.0).then(|| n / d)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts_ignores_order() {
        assert_eq!(Spread::of(&[5.0, 1.0, 3.0]).unwrap(), Spread { median: 3.0, min: 1.0, max: 5.0 });
        assert_eq!(Spread::of(&[4.0, 1.0, 3.0, 2.0]).unwrap().median, 2.5);
        assert_eq!(Spread::of(&[7.0]).unwrap(), Spread::point(7.0));
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(Spread::of(&[f64::NAN, 2.0]).unwrap(), Spread::point(2.0));
    }

    #[test]
    fn one_outlier_moves_the_range_not_the_median() {
        let s = Spread::of(&[100.0, 101.0, 99.0, 100.5, 10.0]).unwrap();
        assert_eq!(s.median, 100.0);
        assert_eq!(s.min, 10.0);
        assert!(s.is_noisy());
    }

    #[test]
    fn noisy_rule_sits_at_the_threshold() {
        // Exactly 25% wide is not noisy; a little more is.
        assert!(!Spread::of(&[100.0, 87.5, 112.5]).unwrap().is_noisy());
        assert!(Spread::of(&[100.0, 87.0, 113.0]).unwrap().is_noisy());
        assert!(Spread { median: 0.0, min: 0.0, max: 1.0 }.is_noisy());
    }

    #[test]
    fn ratios_pair_by_trial_number_not_position() {
        let t = [(1, 10.0), (2, 40.0)];
        let r = [(2, 20.0), (1, 10.0)];
        assert_eq!(paired_ratios(&t, &r), [1.0, 2.0]);
        // Unpaired trials and zero denominators are left out.
        assert_eq!(paired_ratios(&[(1, 1.0), (3, 1.0)], &[(1, 0.0), (2, 1.0)]), Vec::<f64>::new());
    }

    #[test]
    fn ratios_of_medians_differ_from_median_of_paired_ratios() {
        // Trial 2 ran on a slow moment for both: pairing keeps the ratio at 1.0.
        let t = [(1, 10.0), (2, 100.0), (3, 10.0)];
        let r = [(1, 10.0), (2, 100.0), (3, 10.0)];
        let ratios = Spread::of(&paired_ratios(&t, &r)).unwrap();
        assert_eq!(ratios, Spread::point(1.0));
    }
}
