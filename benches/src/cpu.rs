//! `ThreadCpu`: a criterion measurement of the benchmarking thread's CPU time instead of the
//! wall clock, for benches whose goal is a ratio of two small costs on a shared machine. Wall
//! time there counts whatever else the cores run (a build, a fuzzer): at a load of 7 on two
//! cores the same diff measured 46 to 91 us. The thread's CPU time counts only its own running,
//! so the ratio of two benches means what it says (cache contention from neighbours remains).
//!
//! Source: `clock_gettime(CLOCK_THREAD_CPUTIME_ID)` through the `cpu-time` crate (the kernel
//! brings the running thread's count up to date on every read; `/proc/thread-self/schedstat`
//! would not, and moves only at scheduler ticks). Criterion reads it once before and once
//! after each batch of iterations.

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::Throughput;

/// Nanoseconds of CPU the calling thread has used.
pub fn thread_cpu_ns() -> u64 {
    let used = cpu_time::ThreadTime::now().as_duration();
    u64::try_from(used.as_nanos()).unwrap_or(u64::MAX)
}

/// CPU time of the thread running the bench, in nanoseconds (criterion measurement).
pub struct ThreadCpu;

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }

    fn end(&self, started: u64) -> u64 {
        thread_cpu_ns().saturating_sub(started)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

/// Formats nanoseconds of CPU like criterion formats durations, with "cpu" in the unit.
struct CpuFormatter;

impl CpuFormatter {
    /// The divisor and unit for values around `typical` nanoseconds.
    fn unit(typical: f64) -> (f64, &'static str) {
        if typical < 1e3 {
            (1.0, "ns cpu")
        } else if typical < 1e6 {
            (1e3, "us cpu")
        } else if typical < 1e9 {
            (1e6, "ms cpu")
        } else {
            (1e9, "s cpu")
        }
    }
}

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (divisor, unit) = Self::unit(typical);
        values.iter_mut().for_each(|v| *v /= divisor);
        unit
    }

    fn scale_throughputs(
        &self,
        _typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        // Per second of CPU, as criterion's wall-time formatter does per second of wall time.
        let (per, unit) = match throughput {
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) => (*n as f64, "B/s cpu"),
            Throughput::Elements(n) => (*n as f64, "elem/s cpu"),
            Throughput::Bits(n) => (*n as f64, "bit/s cpu"),
            _ => (1.0, "iter/s cpu"),
        };
        values.iter_mut().for_each(|v| *v = per * 1e9 / *v);
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}
