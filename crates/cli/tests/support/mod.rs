//! The end-to-end tests' entry to the shared harness in `capstan-testkit`, bound to the
//! `capstan` binary cargo built for this test run.
#![allow(dead_code)]

pub mod servers;

#[allow(unused_imports)]
pub use capstan_testkit::{docker, sample_app, Daemon, SampleRepo};

pub async fn start_daemon() -> Daemon {
    start_daemon_with(&[]).await
}

pub async fn start_daemon_with(extra: &[&str]) -> Daemon {
    Daemon::start(std::path::Path::new(env!("CARGO_BIN_EXE_capstan")), extra).await
}
