//! Synthetic history for benchmarks: many apps, each with many finished deployments, their
//! phases and log lines, written in one transaction. Never used by the daemon itself.

use crate::{Store, StoreError};
use capstan_core::AppSpec;

/// How much history [`Store::fill_synthetic`] writes.
pub struct SyntheticHistory {
    pub apps: usize,
    pub deployments_per_app: usize,
    pub log_lines_per_deployment: usize,
}

const PHASES: [&str; 7] = [
    "queued",
    "preparing",
    "building",
    "starting",
    "health_checking",
    "switching",
    "live",
];

impl Store {
    /// Writes `history` for apps named `app-0000`, `app-0001`, ...: every deployment
    /// finished (the newest of each app live, the others superseded, every tenth failed).
    /// Returns the app names.
    pub async fn fill_synthetic(
        &self,
        history: &SyntheticHistory,
        spec: &AppSpec,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let start = crate::now_ms() - 30 * 24 * 3600 * 1000;
        let mut names = Vec::with_capacity(history.apps);
        let mut next_id: i64 = 1;
        for a in 0..history.apps {
            let name = format!("app-{a:04}");
            let mut app_spec = spec.clone();
            app_spec.domains = vec![format!("{name}.example.com")];
            sqlx::query(
                "INSERT INTO apps (name, spec, created_at, updated_at) VALUES (?, ?, ?, ?)",
            )
            .bind(&name)
            .bind(crate::stored_spec::encode(&app_spec))
            .bind(start)
            .bind(start)
            .execute(&mut *tx)
            .await?;
            let mut live = None;
            for n in 0..history.deployments_per_app {
                let id = next_id;
                next_id += 1;
                let created = start + (n as i64) * 60_000 + a as i64;
                let newest = n + 1 == history.deployments_per_app;
                let failed = !newest && n % 10 == 9;
                let state = match (newest, failed) {
                    (true, _) => "live",
                    (_, true) => "failed",
                    _ => "superseded",
                };
                sqlx::query(
                    "INSERT INTO deployments (id, app, trigger, state, git_ref, commit_sha, commit_message, image, error, created_at, started_at, finished_at, actor) \
                     VALUES (?, ?, 'deploy', ?, 'main', ?, ?, ?, ?, ?, ?, ?, 'token:ci')",
                )
                .bind(id)
                .bind(&name)
                .bind(state)
                .bind(format!("{:040x}", id * 7919))
                .bind(format!("Handle the edge case reported in issue #{n} of {name}"))
                .bind(format!("bench/{name}:{id}"))
                .bind(failed.then_some("health check failed: HTTP 500 from /health"))
                .bind(created)
                .bind(created + 5)
                .bind(created + 9_000)
                .execute(&mut *tx)
                .await?;
                for (i, phase) in PHASES.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO deployment_phases (deployment_id, state, at) VALUES (?, ?, ?)",
                    )
                    .bind(id)
                    .bind(phase)
                    .bind(created + (i as i64) * 1_500)
                    .execute(&mut *tx)
                    .await?;
                }
                for seq in 1..=history.log_lines_per_deployment {
                    sqlx::query("INSERT INTO deployment_logs (deployment_id, seq, stream, at, line) VALUES (?, ?, 'build', ?, ?)")
                        .bind(id)
                        .bind(seq as i64)
                        .bind(created + seq as i64)
                        .bind(format!("Step {seq}/{} : RUN make build # synthetic line of a benchmark log", history.log_lines_per_deployment))
                        .execute(&mut *tx)
                        .await?;
                }
                if newest {
                    live = Some(id);
                }
            }
            sqlx::query("UPDATE apps SET live_deployment_id = ? WHERE name = ?")
                .bind(live)
                .bind(&name)
                .execute(&mut *tx)
                .await?;
            names.push(name);
        }
        tx.commit().await?;
        Ok(names)
    }
}
