//! One-off runs: a command run in a fresh container of an app's live release, its state
//! and exit code, and its output lines (numbered per run so followers can resume after
//! any line, and bounded: past [`MAX_RUN_LINES`] lines are counted, not kept).

use crate::{now_ms, Store, StoreError};
use capstan_core::AppName;
use sqlx::Row;

/// The most output lines kept per run; the rest are counted and said so at the end.
pub const MAX_RUN_LINES: i64 = 10_000;

/// How a run is doing or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Running,
    /// The command exited with status 0.
    Succeeded,
    /// The command exited with another status, or could not be started.
    Failed,
    /// The command was still running at its time limit and was killed.
    TimedOut,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::TimedOut => "timed_out",
        }
    }

    pub fn is_finished(self) -> bool {
        self != RunState::Running
    }
}

impl std::str::FromStr for RunState {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text {
            "running" => RunState::Running,
            "succeeded" => RunState::Succeeded,
            "failed" => RunState::Failed,
            "timed_out" => RunState::TimedOut,
            other => return Err(format!("unknown run state {other:?}")),
        })
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One run as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub id: i64,
    pub app: AppName,
    /// The live deployment whose release (image, settings) the run used.
    pub deployment_id: i64,
    pub image: String,
    /// The argv, with secret values masked.
    pub command: Vec<String>,
    pub timeout_secs: u32,
    pub state: RunState,
    pub exit_code: Option<i64>,
    pub error: Option<String>,
    pub actor: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

/// What is needed to record a run that starts now.
pub struct NewRun<'a> {
    pub app: &'a AppName,
    pub deployment_id: i64,
    pub image: &'a str,
    pub command: &'a [String],
    pub timeout_secs: u32,
    pub actor: &'a str,
}

/// One line of a run's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLine {
    pub seq: i64,
    pub stream: String,
    pub at: i64,
    pub line: String,
}

const COLUMNS: &str = "id, app, deployment_id, image, command, timeout_secs, state, exit_code, error, actor, started_at, finished_at";

fn decode(row: &sqlx::sqlite::SqliteRow) -> Result<RunRecord, StoreError> {
    let corrupt = |e: String| StoreError::Corrupt(e);
    let app: String = row.try_get("app")?;
    let command: String = row.try_get("command")?;
    let state: String = row.try_get("state")?;
    Ok(RunRecord {
        id: row.try_get("id")?,
        app: AppName::parse(&app).map_err(|e| corrupt(e.to_string()))?,
        deployment_id: row.try_get("deployment_id")?,
        image: row.try_get("image")?,
        command: serde_json::from_str(&command).map_err(|e| corrupt(e.to_string()))?,
        timeout_secs: row.try_get("timeout_secs")?,
        state: state.parse().map_err(corrupt)?,
        exit_code: row.try_get("exit_code")?,
        error: row.try_get("error")?,
        actor: row.try_get("actor")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

impl Store {
    /// Records a run that starts now, in state `running`.
    pub async fn create_run(&self, new: &NewRun<'_>) -> Result<RunRecord, StoreError> {
        let command = serde_json::to_string(new.command)
            .map_err(|e| StoreError::Corrupt(format!("command: {e}")))?;
        let row = sqlx::query(&format!(
            "INSERT INTO runs (app, deployment_id, image, command, timeout_secs, state, actor, started_at)
             VALUES (?, ?, ?, ?, ?, 'running', ?, ?) RETURNING {COLUMNS}"
        ))
        .bind(new.app.as_str())
        .bind(new.deployment_id)
        .bind(new.image)
        .bind(command)
        .bind(new.timeout_secs)
        .bind(new.actor)
        .bind(now_ms())
        .fetch_one(self.pool())
        .await?;
        decode(&row)
    }

    pub async fn run(&self, id: i64) -> Result<RunRecord, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM runs WHERE id = ?"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("run {id}")))?;
        decode(&row)
    }

    /// The app's newest `limit` runs, newest first.
    pub async fn runs_of(&self, app: &AppName, limit: i64) -> Result<Vec<RunRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM runs WHERE app = ? ORDER BY id DESC LIMIT ?"
        ))
        .bind(app.as_str())
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(decode).collect()
    }

    /// How many runs are running: of `app`, or of every app.
    pub async fn running_runs(&self, app: Option<&AppName>) -> Result<i64, StoreError> {
        let count: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM runs WHERE state = 'running' AND (?1 IS NULL OR app = ?1)",
        )
        .bind(app.map(AppName::as_str))
        .fetch_one(self.pool())
        .await?
        .try_get("n")?;
        Ok(count)
    }

    /// Records how a running run ended; a run that has already ended is left as it is
    /// (false).
    pub async fn finish_run(
        &self,
        id: i64,
        state: RunState,
        exit_code: Option<i64>,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE runs SET state = ?, exit_code = ?, error = ?, finished_at = ?
             WHERE id = ? AND state = 'running'",
        )
        .bind(state.as_str())
        .bind(exit_code)
        .bind(error)
        .bind(now_ms())
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks every running run failed with `error` (the daemon stopped while they ran)
    /// and returns them.
    pub async fn fail_running_runs(&self, error: &str) -> Result<Vec<RunRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "UPDATE runs SET state = 'failed', error = ?, finished_at = ?
             WHERE state = 'running' RETURNING {COLUMNS}"
        ))
        .bind(error)
        .bind(now_ms())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Removes the app's finished runs beyond its newest `keep`, with their output.
    pub async fn prune_runs(&self, app: &AppName, keep: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM runs WHERE app = ?1 AND state != 'running' AND id NOT IN
             (SELECT id FROM runs WHERE app = ?1 ORDER BY id DESC LIMIT ?2)",
        )
        .bind(app.as_str())
        .bind(keep)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Appends a line to a run's output and returns it with its sequence number; `None`
    /// once the run holds [`MAX_RUN_LINES`] lines (the line is not kept).
    pub async fn append_run_line(
        &self,
        run: i64,
        stream: &str,
        line: &str,
    ) -> Result<Option<RunLine>, StoreError> {
        self.insert_run_line(run, stream, line, MAX_RUN_LINES).await
    }

    /// Appends a line past the bound (the run's closing note, once).
    pub async fn append_run_note(&self, run: i64, line: &str) -> Result<RunLine, StoreError> {
        self.insert_run_line(run, "capstan", line, i64::MAX)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a note was not kept".into()))
    }

    async fn insert_run_line(
        &self,
        run: i64,
        stream: &str,
        line: &str,
        bound: i64,
    ) -> Result<Option<RunLine>, StoreError> {
        let at = now_ms();
        let seq: Option<i64> = sqlx::query(
            "INSERT INTO run_output (run_id, seq, stream, at, line)
             SELECT ?1, n + 1, ?2, ?3, ?4
             FROM (SELECT COALESCE(MAX(seq), 0) AS n FROM run_output WHERE run_id = ?1)
             WHERE n < ?5
             RETURNING seq",
        )
        .bind(run)
        .bind(stream)
        .bind(at)
        .bind(line)
        .bind(bound)
        .fetch_optional(self.pool())
        .await?
        .map(|row| row.try_get("seq"))
        .transpose()?;
        Ok(seq.map(|seq| RunLine {
            seq,
            stream: stream.to_string(),
            at,
            line: line.to_string(),
        }))
    }

    /// Output lines with a sequence number above `after`, in order.
    pub async fn run_lines_after(&self, run: i64, after: i64) -> Result<Vec<RunLine>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, stream, at, line FROM run_output WHERE run_id = ? AND seq > ? ORDER BY seq",
        )
        .bind(run)
        .bind(after)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RunLine {
                    seq: r.try_get("seq")?,
                    stream: r.try_get("stream")?,
                    at: r.try_get("at")?,
                    line: r.try_get("line")?,
                })
            })
            .collect()
    }
}
