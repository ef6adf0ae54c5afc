//! Steady traffic through the proxy while something changes (a maintenance switch, a
//! daemon upgrade): closed-loop clients, half on keep-alive connections and half opening
//! a connection per request, counting every answer by status and every failed request.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the clients saw so far.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Answers by HTTP status.
    pub statuses: BTreeMap<u16, usize>,
    /// Requests that got no HTTP answer (connection refused or reset, timeout).
    pub errors: Vec<String>,
    /// The bodies of 200 answers, by first line.
    pub bodies: BTreeMap<String, usize>,
}

impl Tally {
    pub fn total(&self) -> usize {
        self.statuses.values().sum::<usize>() + self.errors.len()
    }

    pub fn count(&self, status: u16) -> usize {
        self.statuses.get(&status).copied().unwrap_or(0)
    }
}

/// Running traffic; [`Traffic::stop`] ends it.
pub struct Traffic {
    running: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Traffic {
    /// `clients` keep-alive and `clients` connection-per-request loops sending
    /// `GET http://127.0.0.1:<port><path>` with `Host: host`, 10 ms apart.
    pub fn start(port: u16, host: &str, path: &str, clients: usize) -> Traffic {
        let running = Arc::new(AtomicBool::new(true));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let url = format!("http://127.0.0.1:{port}{path}");
        let tasks = (0..clients * 2)
            .map(|worker| {
                let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
                if worker % 2 == 1 {
                    builder = builder.pool_max_idle_per_host(0);
                }
                let client = builder.build().expect("a reqwest client builds");
                let (url, host) = (url.clone(), host.to_string());
                let (running, tally) = (running.clone(), tally.clone());
                tokio::spawn(async move {
                    while running.load(Ordering::Relaxed) {
                        let outcome = client.get(&url).header("Host", &host).send().await;
                        let seen = match outcome {
                            Ok(response) => {
                                let status = response.status().as_u16();
                                let body = response.text().await.unwrap_or_default();
                                Ok((status, body.lines().next().unwrap_or("").to_string()))
                            }
                            Err(err) => Err(format!("{err:?}")),
                        };
                        {
                            let mut tally = tally.lock().unwrap();
                            match seen {
                                Ok((status, first_line)) => {
                                    *tally.statuses.entry(status).or_default() += 1;
                                    if status == 200 {
                                        *tally.bodies.entry(first_line).or_default() += 1;
                                    }
                                }
                                Err(err) => tally.errors.push(err),
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                })
            })
            .collect();
        Traffic {
            running,
            tally,
            tasks,
        }
    }

    /// What the clients saw so far.
    pub fn tally(&self) -> Tally {
        self.tally.lock().unwrap().clone()
    }

    /// Waits until at least `n` more requests have been answered or failed.
    pub async fn pass(&self, n: usize) {
        let start = self.tally().total();
        while self.tally().total() < start + n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the clients (each finishes its request) and returns the tally.
    pub async fn stop(self) -> Tally {
        self.running.store(false, Ordering::Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
        let tally = self.tally.lock().unwrap().clone();
        tally
    }
}
