//! A one-off run from start to end, in a task of its own: the app's network and volumes
//! made sure of, the container run to its exit or its time limit (then killed and
//! removed), each output line masked, stored (up to `MAX_RUN_LINES` lines and
//! [`MAX_RUN_BYTES`], the rest counted) and broadcast, then the outcome recorded and added to the app's change log.

use crate::logs::Masker;
use crate::runs::RunEvent;
use crate::Deployer;
use capstan_compose::model::{ComposeSpec, Service};
use capstan_engine::EngineError;
use capstan_store::{RunRecord, RunState, MAX_RUN_LINES};
use std::time::Duration;

/// The most output bytes kept per run (lines may be 64 KiB each); later lines are
/// counted, not kept.
const MAX_RUN_BYTES: usize = 8 * 1024 * 1024;

/// How a run ended, before it is recorded.
struct Outcome {
    state: RunState,
    exit_code: Option<i64>,
    error: Option<String>,
}

impl Outcome {
    fn of(result: Result<i64, EngineError>, timeout_secs: u32) -> Self {
        match result {
            Ok(0) => Outcome {
                state: RunState::Succeeded,
                exit_code: Some(0),
                error: None,
            },
            Ok(code) => Outcome {
                state: RunState::Failed,
                exit_code: Some(code),
                error: None,
            },
            Err(EngineError::Timeout(_)) => Outcome {
                state: RunState::TimedOut,
                exit_code: None,
                error: Some(format!(
                    "the command did not finish within {timeout_secs}s; its container was killed"
                )),
            },
            Err(err) => Outcome {
                state: RunState::Failed,
                exit_code: None,
                error: Some(format!("the command could not run: {err}")),
            },
        }
    }

    /// The change log's words for it.
    fn describe(&self) -> String {
        match (self.state, self.exit_code) {
            (RunState::Succeeded, _) => "succeeded (exit 0)".into(),
            (RunState::Failed, Some(code)) => format!("failed (exit {code})"),
            (RunState::TimedOut, _) => "timed out (killed)".into(),
            _ => "failed (did not run)".into(),
        }
    }
}

impl Deployer {
    /// Runs `argv` in `service`'s container for `run` and records how it ended.
    pub(crate) async fn execute_run(
        &self,
        run: RunRecord,
        spec: ComposeSpec,
        service: Service,
        argv: Vec<String>,
        masker: Masker,
    ) {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<String>();
        let writer = tokio::spawn(self.clone().store_output(run.id, receiver, masker.clone()));
        let timeout = Duration::from_secs(run.timeout_secs as u64);
        let result = async {
            self.target().ensure_app_network(&run.app).await?;
            self.target().ensure_volumes(&spec).await?;
            self.target()
                .run_task(&service, &service.container_name, &argv, timeout, &sender)
                .await
        }
        .await;
        drop(sender);
        let dropped = writer.await.unwrap_or_default();
        if dropped > 0 {
            let note = format!(
                "{dropped} more lines of output were not kept (a run keeps {MAX_RUN_LINES} lines, {} MiB)",
                MAX_RUN_BYTES / (1024 * 1024)
            );
            self.store_line(run.id, None, &note).await;
        }
        let mut outcome = Outcome::of(result, run.timeout_secs);
        outcome.error = outcome.error.map(|e| masker.mask(&e));
        if let Some(error) = &outcome.error {
            self.store_line(run.id, None, error).await;
        }
        let recorded = self
            .store()
            .finish_run(
                run.id,
                outcome.state,
                outcome.exit_code,
                outcome.error.as_deref(),
            )
            .await;
        self.run_logs()
            .publish(run.id, RunEvent::End(outcome.state));
        match recorded {
            // Gone with its app, or already ended: nothing more to record.
            Ok(false) => {}
            Ok(true) => {
                let detail = format!("run {}: {}", run.id, outcome.describe());
                if let Err(err) = self
                    .store()
                    .record_event(&run.app, &run.actor, "command finished", &detail)
                    .await
                {
                    tracing::warn!(run = run.id, %err, "cannot record the end of a run");
                }
            }
            Err(err) => tracing::error!(run = run.id, %err, "cannot record the end of a run"),
        }
    }

    /// Masks, stores and broadcasts each line until the sender is gone; returns how many
    /// lines were past the bounds (`MAX_RUN_LINES` lines, [`MAX_RUN_BYTES`]) and not kept.
    async fn store_output(
        self,
        run: i64,
        mut lines: tokio::sync::mpsc::UnboundedReceiver<String>,
        masker: Masker,
    ) -> u64 {
        let (mut dropped, mut bytes) = (0, 0);
        while let Some(line) = lines.recv().await {
            bytes += line.len();
            if bytes > MAX_RUN_BYTES || !self.store_line(run, Some(&masker), &line).await {
                dropped += 1;
            }
        }
        dropped
    }

    /// Stores one line (`masker`: the command's output, else Capstan's own note) and
    /// broadcasts it; false when it was past the bound. A store failure is logged: losing
    /// a line must not end the run.
    async fn store_line(&self, run: i64, masker: Option<&Masker>, line: &str) -> bool {
        let stored = match masker {
            Some(masker) => {
                self.store()
                    .append_run_line(run, "output", &masker.mask(line))
                    .await
            }
            None => self.store().append_run_note(run, line).await.map(Some),
        };
        match stored {
            Ok(Some(line)) => {
                self.run_logs().publish(run, RunEvent::Line(line));
                true
            }
            Ok(None) => false,
            Err(err) => {
                tracing::warn!(run, %err, "cannot store a line of a run's output");
                true
            }
        }
    }
}
