//! The audio benchmark's figures, as printed and as JSON.

use std::collections::HashMap;

use serde::Serialize;

use super::echo::EchoStats;
use super::loadgen::ThreadResult;
use super::{out, AudioArgs};

/// CPU and memory of one process over the window.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ProcUse {
    /// utime + stime spent inside the window.
    pub cpu_seconds: f64,
    /// VmRSS at the end of the window.
    pub rss_kib: u64,
}

/// Percentiles of a set of microsecond samples.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub n: usize,
    /// Median.
    pub p50: f64,
    /// 90th.
    pub p90: f64,
    /// 99th.
    pub p99: f64,
    /// 99.9th.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// From samples in µs, reported in ms.
    #[must_use]
    pub fn of_micros(samples: &mut [u32]) -> Self {
        samples.sort_unstable();
        let at = |q: f64| -> f64 {
            if samples.is_empty() {
                return 0.0;
            }
            let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
            f64::from(samples.get(i).copied().unwrap_or(0)) / 1000.0
        };
        Self {
            n: samples.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: samples.last().map_or(0.0, |&m| f64::from(m) / 1000.0),
        }
    }
}

/// Everything `bench audio` reports.
#[derive(Debug, Clone, Serialize)]
pub struct AudioReport {
    /// The bridge measured (`callvisor` or the `--target` URL).
    pub bridge: String,
    /// Pre-opened Realtime sessions (callvisor only).
    pub preopen: bool,
    /// Calls attempted.
    pub calls_attempted: usize,
    /// Calls whose stream opened.
    pub calls_connected: usize,
    /// Calls that failed (set-up or mid-call).
    pub calls_failed: usize,
    /// The first few failures.
    pub failures: Vec<String>,
    /// Seconds the ramp took.
    pub ramp_seconds: f64,
    /// Seconds of the measured window.
    pub window_seconds: f64,
    /// Frames sent over the whole run.
    pub frames_sent: u64,
    /// Distinct frames echoed back over the whole run.
    pub frames_echoed: u64,
    /// Sent and never echoed (including echoes too late to match).
    pub frames_lost: u64,
    /// Echoes that arrived after a later frame's echo.
    pub frames_out_of_order: u64,
    /// Frames echoed twice.
    pub frames_duplicated: u64,
    /// Frames that reached the wrong call.
    pub frames_foreign: u64,
    /// Frames sent inside the window.
    pub window_frames_sent: u64,
    /// Of those, echoed (the frame round trips the CPU figure divides by).
    pub window_frames_echoed: u64,
    /// Marks received / acknowledged.
    pub marks: (u64, u64),
    /// Protocol errors seen by the generator.
    pub protocol_errors: u64,
    /// Round trip caller frame sent → its audio back on the caller's socket, ms.
    pub rtt_ms: Percentiles,
    /// The bridge's CPU over the window.
    pub server: Option<ProcUse>,
    /// The bridge's CPU per frame round trip, µs.
    pub server_cpu_us_per_frame: Option<f64>,
    /// The bridge's RSS before any call, KiB.
    pub server_rss_idle_kib: Option<u64>,
    /// The bridge's peak RSS in the window, KiB.
    pub server_rss_peak_kib: u64,
    /// (peak − idle) ÷ live calls, KiB.
    pub server_rss_per_call_kib: Option<f64>,
    /// The echo stand-in's CPU over the window.
    pub standin: Option<ProcUse>,
    /// Stand-in CPU per frame, µs.
    pub standin_cpu_us_per_frame: Option<f64>,
    /// The load generator's CPU over the window (the bench process).
    pub loadgen: Option<ProcUse>,
    /// Generator CPU per frame, µs.
    pub loadgen_cpu_us_per_frame: Option<f64>,
    /// Webhook sent → first caller frame arriving at the Realtime stand-in, ms.
    pub setup_ms: Percentiles,
    /// Webhook sent → first echo back on the caller's socket (an upper bound), ms.
    pub setup_first_echo_ms: Percentiles,
    /// The generator's timer lateness per frame in the window, ms.
    pub loadgen_lateness_ms: Percentiles,
    /// Live calls at the end of the window.
    pub live_calls: usize,
    /// Generator threads.
    pub loadgen_threads: usize,
    /// The whole machine's busy CPU over the window, seconds (all cores).
    pub machine_busy_seconds: Option<f64>,
    /// CPU seconds the machine had over the window (cores × window).
    pub machine_total_seconds: Option<f64>,
    /// Busy CPU not spent by the bridge, the stand-in or the generator: other work on the
    /// machine, which makes timings (not CPU per frame) unrepresentative.
    pub others_cpu_seconds: Option<f64>,
}

impl AudioReport {
    /// Folds the generator's, the stand-in's and `/proc`'s readings together.
    #[allow(clippy::too_many_arguments)]
    #[must_use]
    pub fn build(
        args: &AudioArgs,
        threads: &[ThreadResult],
        echo: &EchoStats,
        window_seconds: f64,
        ramp_seconds: f64,
        server: Option<ProcUse>,
        server_rss_idle_kib: Option<u64>,
        server_rss_peak_kib: u64,
        live_calls: usize,
        standin: Option<ProcUse>,
        loadgen: Option<ProcUse>,
        machine: Option<(f64, f64)>,
    ) -> Self {
        let calls: Vec<_> = threads.iter().flat_map(|t| t.calls.iter()).collect();
        let sum =
            |f: fn(&super::loadgen::CallResult) -> u64| calls.iter().map(|c| f(c)).sum::<u64>();
        let mut rtt: Vec<u32> = threads
            .iter()
            .flat_map(|t| t.rtt_us.iter().copied())
            .collect();
        let mut late: Vec<u32> = threads
            .iter()
            .flat_map(|t| t.lateness_us.iter().copied())
            .collect();
        let sent_at: HashMap<u32, u64> = calls
            .iter()
            .map(|c| (c.call_tag, c.webhook_sent_unix_us))
            .collect();
        let mut setup: Vec<u32> = echo
            .first_audio
            .iter()
            .filter_map(|(tag, at)| {
                let sent = sent_at.get(tag)?;
                u32::try_from(at.checked_sub(*sent)?).ok()
            })
            .collect();
        let mut first_echo: Vec<u32> = calls
            .iter()
            .filter_map(|c| u32::try_from(c.first_echo_after?.as_micros()).ok())
            .collect();
        let window_echoed = sum(|c| c.window_echoed);
        let per_frame = |u: Option<ProcUse>| {
            u.filter(|_| window_echoed > 0)
                .map(|u| u.cpu_seconds * 1e6 / window_echoed as f64)
        };
        let live = live_calls.max(1);
        Self {
            bridge: args
                .target
                .clone()
                .unwrap_or_else(|| "callvisor".to_owned()),
            preopen: args.preopen,
            calls_attempted: args.calls,
            calls_connected: calls.iter().filter(|c| c.connected).count(),
            calls_failed: calls.iter().filter(|c| c.error.is_some()).count()
                + args.calls.saturating_sub(calls.len()),
            failures: calls
                .iter()
                .filter_map(|c| c.error.clone())
                .take(5)
                .collect(),
            ramp_seconds,
            window_seconds,
            frames_sent: sum(|c| c.sent),
            frames_echoed: sum(|c| c.echoed),
            frames_lost: sum(super::loadgen::CallResult::lost),
            frames_out_of_order: sum(|c| c.out_of_order),
            frames_duplicated: sum(|c| c.duplicates),
            frames_foreign: sum(|c| c.foreign),
            window_frames_sent: sum(|c| c.window_sent),
            window_frames_echoed: window_echoed,
            marks: (sum(|c| c.marks), sum(|c| c.marks_acked)),
            protocol_errors: sum(|c| c.protocol_errors),
            rtt_ms: Percentiles::of_micros(&mut rtt),
            server_cpu_us_per_frame: per_frame(server),
            server,
            server_rss_idle_kib,
            server_rss_peak_kib,
            server_rss_per_call_kib: server_rss_idle_kib
                .filter(|_| server_rss_peak_kib > 0)
                .map(|idle| server_rss_peak_kib.saturating_sub(idle) as f64 / live as f64),
            standin_cpu_us_per_frame: per_frame(standin),
            standin,
            loadgen_cpu_us_per_frame: per_frame(loadgen),
            loadgen,
            setup_ms: Percentiles::of_micros(&mut setup),
            setup_first_echo_ms: Percentiles::of_micros(&mut first_echo),
            loadgen_lateness_ms: Percentiles::of_micros(&mut late),
            live_calls,
            loadgen_threads: args.threads,
            machine_busy_seconds: machine.map(|m| m.0),
            machine_total_seconds: machine.map(|m| m.1),
            others_cpu_seconds: machine.map(|(busy, _)| {
                let ours: f64 = [server, standin, loadgen]
                    .iter()
                    .flatten()
                    .map(|u| u.cpu_seconds)
                    .sum();
                (busy - ours).max(0.0)
            }),
        }
    }

    /// True when nothing was lost, reordered, duplicated or misrouted and every call held.
    #[must_use]
    pub fn clean(&self) -> bool {
        self.calls_failed == 0
            && self.calls_connected == self.calls_attempted
            && self.frames_lost == 0
            && self.frames_out_of_order == 0
            && self.frames_duplicated == 0
            && self.frames_foreign == 0
            && self.frames_sent > 0
    }

    /// Prints the report as aligned text.
    pub fn print(&self) {
        let pct = |p: &Percentiles| {
            format!(
                "p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2} ms  (n={})",
                p.p50, p.p90, p.p99, p.p999, p.max, p.n
            )
        };
        let cpu = |u: &Option<ProcUse>, per: Option<f64>| match (u, per) {
            (Some(u), Some(per)) => format!(
                "{:.2} s CPU = {:.0}% of a core, {per:.1} µs/frame, RSS {} KiB",
                u.cpu_seconds,
                u.cpu_seconds * 100.0 / self.window_seconds.max(1e-9),
                u.rss_kib
            ),
            _ => "not measured".to_owned(),
        };
        out!(
            "== callvisor-dev bench audio: {} ({} calls, preopen={})",
            self.bridge,
            self.calls_attempted,
            self.preopen
        );
        out!(
            "calls      attempted {}  connected {}  failed {}  (ramp {:.1} s, window {:.1} s, {} live)",
            self.calls_attempted,
            self.calls_connected,
            self.calls_failed,
            self.ramp_seconds,
            self.window_seconds,
            self.live_calls
        );
        for failure in &self.failures {
            out!("  failure: {failure}");
        }
        out!(
            "frames     sent {}  echoed {}  lost {}  out-of-order {}  duplicated {}  foreign {}  (window: {} sent, {} echoed)",
            self.frames_sent,
            self.frames_echoed,
            self.frames_lost,
            self.frames_out_of_order,
            self.frames_duplicated,
            self.frames_foreign,
            self.window_frames_sent,
            self.window_frames_echoed
        );
        out!(
            "marks      received {}  acknowledged {}  protocol errors {}",
            self.marks.0,
            self.marks.1,
            self.protocol_errors
        );
        out!("round trip {}", pct(&self.rtt_ms));
        out!(
            "server     {}",
            cpu(&self.server, self.server_cpu_us_per_frame)
        );
        match (self.server_rss_idle_kib, self.server_rss_per_call_kib) {
            (Some(idle), Some(per)) => out!(
                "server RSS idle {idle} KiB, peak {} KiB: {per:.1} KiB per live call",
                self.server_rss_peak_kib
            ),
            _ => out!("server RSS not measured"),
        }
        out!(
            "stand-in   {}",
            cpu(&self.standin, self.standin_cpu_us_per_frame)
        );
        out!(
            "loadgen    {} ({} threads)",
            cpu(&self.loadgen, self.loadgen_cpu_us_per_frame),
            self.loadgen_threads
        );
        out!(
            "set-up     webhook → first frame at the stand-in: {}",
            pct(&self.setup_ms)
        );
        out!(
            "           webhook → first echo at the caller:    {}",
            pct(&self.setup_first_echo_ms)
        );
        out!(
            "lateness   generator timer: {}",
            pct(&self.loadgen_lateness_ms)
        );
        if let (Some(busy), Some(total), Some(others)) = (
            self.machine_busy_seconds,
            self.machine_total_seconds,
            self.others_cpu_seconds,
        ) {
            out!(
                "machine    {:.0}% busy over the window; other processes {:.2} s CPU ({:.0}% of a core){}",
                busy * 100.0 / total.max(1e-9),
                others,
                others * 100.0 / self.window_seconds.max(1e-9),
                if others > 0.05 * self.window_seconds {
                    ": timings are disturbed, CPU per frame less so"
                } else {
                    ""
                }
            );
        }
        out!(
            "verdict    {}",
            if self.clean() {
                "clean: every call connected, no frame lost, reordered, duplicated or misrouted"
            } else {
                "NOT CLEAN: see above"
            }
        );
    }
}
