//! Deployment log lines, numbered per deployment so followers can resume after any line.

use crate::{now_ms, Store, StoreError};
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub seq: i64,
    pub stream: String,
    pub at: i64,
    pub line: String,
}

impl Store {
    /// Appends a line and returns it with its sequence number.
    pub async fn append_log(
        &self,
        deployment: i64,
        stream: &str,
        line: &str,
    ) -> Result<LogLine, StoreError> {
        let at = now_ms();
        let seq: i64 = sqlx::query(
            "INSERT INTO deployment_logs (deployment_id, seq, stream, at, line)
             VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM deployment_logs WHERE deployment_id = ?1), ?2, ?3, ?4)
             RETURNING seq",
        )
        .bind(deployment)
        .bind(stream)
        .bind(at)
        .bind(line)
        .fetch_one(self.pool())
        .await?
        .try_get("seq")?;
        Ok(LogLine {
            seq,
            stream: stream.to_string(),
            at,
            line: line.to_string(),
        })
    }

    /// Lines with a sequence number above `after`, in order.
    pub async fn logs_after(
        &self,
        deployment: i64,
        after: i64,
    ) -> Result<Vec<LogLine>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, stream, at, line FROM deployment_logs WHERE deployment_id = ? AND seq > ? ORDER BY seq",
        )
        .bind(deployment)
        .bind(after)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LogLine {
                    seq: r.try_get("seq")?,
                    stream: r.try_get("stream")?,
                    at: r.try_get("at")?,
                    line: r.try_get("line")?,
                })
            })
            .collect()
    }
}
