//! What a measurement yields: one [`Trial`] (a round-trip run and a stream run, each with a
//! fresh child), and a [`Measurement`], the trials of one mechanism at one size with their
//! medians and spreads.

use serde::{Deserialize, Serialize};

use super::mechanism::Mechanism;
use super::placement::{Cores, Placement};
use super::stats::Spread;

/// Round-trip latency of one mechanism at one size.
///
/// Every figure is a whole round trip (parent to child and back), never halved into a
/// one-way latency.
///
/// # Examples
/// [`measure`](super::measure()) fills it in; here it is written by hand.
/// ```
/// use switchboard::measure::Latency;
///
/// let latency = Latency {
///     round_trips: 2000,
///     min_ns: 610,
///     p50_ns: 700,
///     p90_ns: 820,
///     p99_ns: 14_900,
///     p999_ns: 40_000,
///     max_ns: 90_000,
///     cpu_ns_per_round_trip: 2_100.0,
/// };
/// let tail = latency.p99_ns as f64 / latency.p50_ns as f64;
/// println!("median {:.2} µs, p99 {tail:.0}x the median", latency.p50_ns as f64 / 1e3);
/// // 2.1 µs of CPU per 0.7 µs round trip: both processes were busy all the time (spinning).
/// assert!(latency.cpu_ns_per_round_trip > 2.0 * latency.p50_ns as f64);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Measured round trips.
    pub round_trips: u64,
    /// Fastest round trip, ns.
    pub min_ns: u64,
    /// Median round trip, ns.
    pub p50_ns: u64,
    /// 90th percentile, ns.
    pub p90_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// 99.9th percentile, ns.
    pub p999_ns: u64,
    /// Slowest round trip, ns.
    pub max_ns: u64,
    /// CPU time of both processes per round trip, ns.
    pub cpu_ns_per_round_trip: f64,
}

/// One-way throughput of one mechanism at one size.
///
/// # Examples
/// [`measure`](super::measure()) fills it in; here it is written by hand, for 64-byte messages.
/// ```
/// use switchboard::measure::Throughput;
///
/// let throughput = Throughput {
///     messages: 200_000,
///     seconds: 0.5,
///     mb_per_s: 25.6,
///     msgs_per_s: 400_000.0,
///     cpu_ns_per_message: 2_300.0,
/// };
/// assert_eq!(throughput.msgs_per_s, throughput.messages as f64 / throughput.seconds);
/// assert_eq!(throughput.mb_per_s, throughput.msgs_per_s * 64.0 / 1e6);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Messages received and checked.
    pub messages: u64,
    /// Seconds the measured part took.
    pub seconds: f64,
    /// Payload megabytes (10^6) per second.
    pub mb_per_s: f64,
    /// Messages per second.
    pub msgs_per_s: f64,
    /// CPU time of both processes per message, ns.
    pub cpu_ns_per_message: f64,
}

/// Where the two processes ran in each run of a trial.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialPlacement {
    /// During the round trips.
    pub latency: Placement,
    /// During the stream.
    pub throughput: Placement,
}

/// One trial of one mechanism at one size: a round-trip run and a stream run.
///
/// # Examples
/// ```
/// use switchboard::measure::{Latency, Throughput, Trial};
///
/// let trial = Trial {
///     trial: 1,
///     latency: Latency { p50_ns: 700, ..Latency::default() },
///     throughput: Throughput { mb_per_s: 25.6, ..Throughput::default() },
///     placement: Default::default(),
/// };
/// assert_eq!(trial.latency.p50_ns, 700);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// Which trial, from 1: the same number on a transport and its raw baseline marks runs
    /// made moments apart, whose ratio is taken.
    pub trial: usize,
    /// Round trips.
    pub latency: Latency,
    /// One-way stream.
    pub throughput: Throughput,
    /// Where parent and child ran.
    pub placement: TrialPlacement,
}

/// A figure of a measurement that the reports give a spread for and compare between runs.
///
/// # Examples
/// ```
/// use switchboard::measure::Figure;
///
/// assert_eq!(Figure::RttP50.to_string(), "RTT p50");
/// assert_eq!(Figure::RttP50.key(), "rtt_p50_ns");
/// assert!(Figure::MbPerSXRaw.is_ratio() && !Figure::MbPerS.is_ratio());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Figure {
    /// Median round trip, ns.
    RttP50,
    /// 99th-percentile round trip, ns.
    RttP99,
    /// Streaming payload MB/s.
    MbPerS,
    /// Median round trip over the raw baseline's, trial by trial.
    RttP50XRaw,
    /// MB/s over the raw baseline's, trial by trial.
    MbPerSXRaw,
}

impl Figure {
    /// Every figure, in table order.
    pub const ALL: [Figure; 5] =
        [Figure::RttP50, Figure::RttP99, Figure::MbPerS, Figure::RttP50XRaw, Figure::MbPerSXRaw];

    /// The figure's name in the CSV and JSON: `rtt_p50_ns`, `rtt_p99_ns`, `mb_per_s`,
    /// `rtt_p50_x_raw`, `mb_per_s_x_raw` (the fields of [`Spreads`]).
    pub fn key(self) -> &'static str {
        match self {
            Figure::RttP50 => "rtt_p50_ns",
            Figure::RttP99 => "rtt_p99_ns",
            Figure::MbPerS => "mb_per_s",
            Figure::RttP50XRaw => "rtt_p50_x_raw",
            Figure::MbPerSXRaw => "mb_per_s_x_raw",
        }
    }

    /// Whether this is a transport / raw-baseline ratio.
    pub fn is_ratio(self) -> bool {
        matches!(self, Figure::RttP50XRaw | Figure::MbPerSXRaw)
    }

    /// This figure in one trial (the absolute figures only).
    fn of_trial(self, t: &Trial) -> Option<f64> {
        match self {
            Figure::RttP50 => Some(t.latency.p50_ns as f64),
            Figure::RttP99 => Some(t.latency.p99_ns as f64),
            Figure::MbPerS => Some(t.throughput.mb_per_s),
            Figure::RttP50XRaw | Figure::MbPerSXRaw => None,
        }
    }
}

impl std::fmt::Display for Figure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Figure::RttP50 => "RTT p50",
            Figure::RttP99 => "RTT p99",
            Figure::MbPerS => "MB/s",
            Figure::RttP50XRaw => "RTT xraw",
            Figure::MbPerSXRaw => "MB/s xraw",
        })
    }
}

/// The median and spread of each [`Figure`] over the trials; the ratios only for a transport
/// whose raw baseline was measured in the same run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Spreads {
    /// Median round trip, ns.
    pub rtt_p50_ns: Option<Spread>,
    /// 99th-percentile round trip, ns.
    pub rtt_p99_ns: Option<Spread>,
    /// Streaming MB/s.
    pub mb_per_s: Option<Spread>,
    /// Median round trip / the raw baseline's, paired by trial.
    pub rtt_p50_x_raw: Option<Spread>,
    /// MB/s / the raw baseline's, paired by trial.
    pub mb_per_s_x_raw: Option<Spread>,
}

/// Everything measured for one mechanism at one size: every trial, and their medians.
///
/// `latency` and `throughput` hold the median of each field over the trials (so a reader of
/// the JSON that knows only them reads medians); `spread` the median, min and max of the
/// figures that the reports show; `trials` every trial.
///
/// # Examples
/// ```
/// use switchboard::measure::{Figure, Latency, Measurement, Mechanism, Throughput, Trial};
///
/// let trial = |trial, p50_ns, mb_per_s| Trial {
///     trial,
///     latency: Latency { p50_ns, ..Latency::default() },
///     throughput: Throughput { mb_per_s, ..Throughput::default() },
///     placement: Default::default(),
/// };
/// let trials = vec![trial(1, 700, 400.0), trial(2, 900, 420.0), trial(3, 710, 380.0)];
/// let m = Measurement::from_trials("shm-spin".parse::<Mechanism>()?, 64, trials);
/// assert_eq!(m.latency.p50_ns, 710);
/// let p50 = m.figure(Figure::RttP50).unwrap();
/// assert_eq!((p50.min, p50.max), (700.0, 900.0));
/// # Ok::<(), switchboard::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// `tcp`, `shm-spin`, `raw-pipe`, ...
    pub mechanism: String,
    /// The transport kind underneath.
    pub kind: String,
    /// Whether this is a raw baseline.
    pub raw: bool,
    /// Message size in bytes.
    pub size: usize,
    /// Round trips: the median of each field over the trials.
    pub latency: Latency,
    /// One-way stream: the median of each field over the trials.
    pub throughput: Throughput,
    /// Median, min and max of each figure over the trials.
    #[serde(default)]
    pub spread: Spreads,
    /// Every trial.
    #[serde(default)]
    pub trials: Vec<Trial>,
}

impl Measurement {
    /// The measurement of `mechanism` at `size` from its trials (the ratios to a raw
    /// baseline are filled in by [`Report::push`](super::Report::push)).
    pub fn from_trials(mechanism: Mechanism, size: usize, trials: Vec<Trial>) -> Measurement {
        let med =
            |f: &dyn Fn(&Trial) -> f64| Spread::of(&trials.iter().map(f).collect::<Vec<_>>()).map_or(0.0, |s| s.median);
        let med_u64 = |f: &dyn Fn(&Trial) -> u64| med(&|t| f(t) as f64).round() as u64;
        let latency = Latency {
            round_trips: med_u64(&|t| t.latency.round_trips),
            min_ns: med_u64(&|t| t.latency.min_ns),
            p50_ns: med_u64(&|t| t.latency.p50_ns),
            p90_ns: med_u64(&|t| t.latency.p90_ns),
            p99_ns: med_u64(&|t| t.latency.p99_ns),
            p999_ns: med_u64(&|t| t.latency.p999_ns),
            max_ns: med_u64(&|t| t.latency.max_ns),
            cpu_ns_per_round_trip: med(&|t| t.latency.cpu_ns_per_round_trip),
        };
        let throughput = Throughput {
            messages: med_u64(&|t| t.throughput.messages),
            seconds: med(&|t| t.throughput.seconds),
            mb_per_s: med(&|t| t.throughput.mb_per_s),
            msgs_per_s: med(&|t| t.throughput.msgs_per_s),
            cpu_ns_per_message: med(&|t| t.throughput.cpu_ns_per_message),
        };
        let mut m = Measurement {
            mechanism: mechanism.to_string(),
            kind: mechanism.kind_name(),
            raw: mechanism.is_raw(),
            size,
            latency,
            throughput,
            spread: Spreads::default(),
            trials,
        };
        m.spread.rtt_p50_ns = Spread::of(&m.values(Figure::RttP50));
        m.spread.rtt_p99_ns = Spread::of(&m.values(Figure::RttP99));
        m.spread.mb_per_s = Spread::of(&m.values(Figure::MbPerS));
        m
    }

    /// An absolute figure in each trial, for pairing: (trial number, value).
    pub(crate) fn by_trial(&self, figure: Figure) -> Vec<(usize, f64)> {
        self.trials.iter().filter_map(|t| Some((t.trial, figure.of_trial(t)?))).collect()
    }

    fn values(&self, figure: Figure) -> Vec<f64> {
        self.by_trial(figure).into_iter().map(|(_, v)| v).collect()
    }

    /// The median and spread of `figure`; for a measurement without trials (a report from
    /// before trials were repeated), its one value as a spread of no width. `None` for a ratio
    /// that was not computed (a raw baseline, or no baseline in the run).
    pub fn figure(&self, figure: Figure) -> Option<Spread> {
        let s = &self.spread;
        match figure {
            Figure::RttP50 => s.rtt_p50_ns.or(Some(Spread::point(self.latency.p50_ns as f64))),
            Figure::RttP99 => s.rtt_p99_ns.or(Some(Spread::point(self.latency.p99_ns as f64))),
            Figure::MbPerS => s.mb_per_s.or(Some(Spread::point(self.throughput.mb_per_s))),
            Figure::RttP50XRaw => s.rtt_p50_x_raw,
            Figure::MbPerSXRaw => s.mb_per_s_x_raw,
        }
    }

    /// The figures whose trials disagree by more than [`NOISY_SPREAD`](super::NOISY_SPREAD).
    pub fn noisy(&self) -> Vec<Figure> {
        Figure::ALL.into_iter().filter(|&f| self.figure(f).is_some_and(|s| s.is_noisy())).collect()
    }

    /// One character per trial, in trial order, for where the round trips ran, and the same
    /// for the streams: `1` one core, `2` two cores, `m` moved, `?` unknown.
    pub fn placement_symbols(&self) -> (String, String) {
        let sym = |p: &Placement| p.cores().symbol();
        (
            self.trials.iter().map(|t| sym(&t.placement.latency)).collect(),
            self.trials.iter().map(|t| sym(&t.placement.throughput)).collect(),
        )
    }

    /// The trials' values of an absolute `figure` grouped by where the run ran; empty
    /// groups left out.
    pub fn by_placement(&self, figure: Figure) -> Vec<(Cores, Vec<f64>)> {
        let mut groups: Vec<(Cores, Vec<f64>)> = Vec::new();
        for t in &self.trials {
            let Some(v) = figure.of_trial(t) else { continue };
            let placement = if figure == Figure::MbPerS { &t.placement.throughput } else { &t.placement.latency };
            let cores = placement.cores();
            match groups.iter_mut().find(|(c, _)| *c == cores) {
                Some((_, vs)) => vs.push(v),
                None => groups.push((cores, vec![v])),
            }
        }
        groups.sort_by_key(|(c, _)| *c);
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(trial: usize, p50_ns: u64, mb_per_s: f64, same_core: bool) -> Trial {
        let placed = Placement { samples: 4, same_core: if same_core { 4 } else { 0 }, ..Placement::default() };
        Trial {
            trial,
            latency: Latency { p50_ns, p99_ns: 2 * p50_ns, round_trips: 100 + trial as u64, ..Latency::default() },
            throughput: Throughput { mb_per_s, ..Throughput::default() },
            placement: TrialPlacement { latency: placed.clone(), throughput: placed },
        }
    }

    #[test]
    fn medians_are_taken_field_by_field() {
        let trials = vec![trial(1, 300, 5.0, false), trial(2, 100, 9.0, false), trial(3, 200, 1.0, true)];
        let m = Measurement::from_trials("pipe".parse().unwrap(), 8, trials);
        assert_eq!((m.latency.p50_ns, m.latency.p99_ns, m.latency.round_trips), (200, 400, 102));
        assert_eq!(m.throughput.mb_per_s, 5.0);
        assert_eq!(m.figure(Figure::MbPerS), Some(Spread { median: 5.0, min: 1.0, max: 9.0 }));
        assert_eq!(m.figure(Figure::RttP50XRaw), None);
        assert_eq!(m.noisy(), [Figure::RttP50, Figure::RttP99, Figure::MbPerS]);
    }

    #[test]
    fn trials_group_by_placement_and_symbols_follow_trial_order() {
        let trials = vec![trial(1, 300, 5.0, false), trial(2, 100, 9.0, true), trial(3, 200, 1.0, false)];
        let m = Measurement::from_trials("unix".parse().unwrap(), 64, trials);
        assert_eq!(m.placement_symbols(), ("212".to_string(), "212".to_string()));
        assert_eq!(m.by_placement(Figure::MbPerS), [(Cores::One, vec![9.0]), (Cores::Two, vec![5.0, 1.0])]);
    }

    #[test]
    fn a_measurement_without_trials_reads_its_medians_as_points() {
        let mut m = Measurement::from_trials("tcp".parse().unwrap(), 64, vec![trial(1, 500, 2.0, false)]);
        m.trials.clear();
        m.spread = Spreads::default();
        assert_eq!(m.figure(Figure::RttP99), Some(Spread::point(1000.0)));
        assert!(m.noisy().is_empty());
    }
}
