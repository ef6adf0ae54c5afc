//! The daemon's resident memory, read from /proc, sampled every 50 ms for peaks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub fn current_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

pub struct Sampler {
    peak: Arc<AtomicU64>,
    pid: u32,
}

impl Sampler {
    pub fn start(pid: u32) -> Sampler {
        let peak = Arc::new(AtomicU64::new(0));
        let shared = peak.clone();
        tokio::spawn(async move {
            loop {
                shared.fetch_max(current_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Sampler { peak, pid }
    }

    pub fn reset_peak(&self) {
        self.peak.store(current_kib(self.pid), Ordering::Relaxed);
    }

    pub fn peak_kib(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}
