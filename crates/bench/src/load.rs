//! The load generator: closed-loop HTTP clients through the proxy, half on keep-alive
//! connections and half opening a new connection per request, recording every request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One request as the client saw it.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Start, in unix milliseconds (comparable with the daemon's phase timestamps).
    pub start_ms: i64,
    pub latency: Duration,
    /// HTTP status, or 0 for a connection error or timeout.
    pub status: u16,
    /// The first line of the body (the version that answered).
    pub version: String,
    pub slow: bool,
    pub keep_alive: bool,
}

impl Sample {
    pub fn failed(&self) -> bool {
        !(200..300).contains(&self.status)
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Running load; `stop` ends it and returns every sample.
pub struct Load {
    running: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts `clients` keep-alive and `clients` new-connection workers against `url` with
    /// `Host: host`, each pausing `pause` between requests; one request in `slow_every`
    /// asks the app to take 300 ms, so some are always in flight at a switch.
    pub fn start(url: &str, host: &str, clients: usize, pause: Duration, slow_every: u64) -> Load {
        let running = Arc::new(AtomicBool::new(true));
        let samples = Arc::new(Mutex::new(Vec::with_capacity(200_000)));
        let mut tasks = Vec::new();
        for worker in 0..clients * 2 {
            let keep_alive = worker % 2 == 0;
            let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
            if !keep_alive {
                builder = builder.pool_max_idle_per_host(0);
            }
            let client = builder.build().unwrap();
            let (url, host) = (url.to_string(), host.to_string());
            let (running, samples) = (running.clone(), samples.clone());
            tasks.push(tokio::spawn(async move {
                let mut n: u64 = worker as u64;
                while running.load(Ordering::Relaxed) {
                    n += 1;
                    let slow = slow_every > 0 && n.is_multiple_of(slow_every);
                    let target = if slow {
                        format!("{url}/slow?ms=300")
                    } else {
                        format!("{url}/")
                    };
                    let start_ms = now_ms();
                    let started = Instant::now();
                    let (status, version) =
                        match client.get(&target).header("Host", &host).send().await {
                            Ok(response) => {
                                let status = response.status().as_u16();
                                let body = response.text().await.unwrap_or_default();
                                (
                                    status,
                                    body.lines()
                                        .next()
                                        .unwrap_or("")
                                        .split(" (")
                                        .next()
                                        .unwrap_or("")
                                        .to_string(),
                                )
                            }
                            Err(_) => (0, String::new()),
                        };
                    samples.lock().unwrap().push(Sample {
                        start_ms,
                        latency: started.elapsed(),
                        status,
                        version,
                        slow,
                        keep_alive,
                    });
                    tokio::time::sleep(pause).await;
                }
            }));
        }
        Load {
            running,
            samples,
            tasks,
        }
    }

    pub async fn stop(self) -> Vec<Sample> {
        self.running.store(false, Ordering::Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
        let samples = self.samples.lock().unwrap().clone();
        samples
    }
}
