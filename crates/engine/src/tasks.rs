//! Commands around a cutover: a one-off container of a deployment's image (pre-deploy)
//! and an exec in a running container (post-deploy), both argv-only, bounded in time, with
//! every output line sent to the deployment log.

use crate::{Engine, EngineError};
use bollard::container::{LogOutput, LogsOptions};
use bollard::exec::{CreateExecOptions, StartExecResults};
use capstan_compose::Service;
use futures::{Stream, StreamExt};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// Sends each line of a container output stream to `log` until the stream ends.
async fn forward_output(
    mut stream: impl Stream<Item = Result<LogOutput, bollard::errors::Error>> + Unpin,
    log: &UnboundedSender<String>,
) -> Result<(), EngineError> {
    // One assembler per stream, so stdout and stderr never interleave within a line.
    let mut stdout = crate::lines::LineAssembler::default();
    let mut stderr = crate::lines::LineAssembler::default();
    while let Some(item) = stream.next().await {
        let lines = match item? {
            LogOutput::StdOut { message } | LogOutput::Console { message } => stdout.push(&message),
            LogOutput::StdErr { message } => stderr.push(&message),
            LogOutput::StdIn { .. } => Vec::new(),
        };
        for line in lines {
            let _ = log.send(line);
        }
    }
    for line in [stdout.finish(), stderr.finish()].into_iter().flatten() {
        let _ = log.send(line);
    }
    Ok(())
}

impl Engine {
    /// Runs `argv` in a one-off container made like `service` (same image, env, volumes,
    /// network, limits; no health check, no restart) and returns its exit
    /// code. The container is removed afterwards, also on timeout.
    pub async fn run_task(
        &self,
        service: &Service,
        name: &str,
        argv: &[String],
        timeout: Duration,
        log: &UnboundedSender<String>,
    ) -> Result<i64, EngineError> {
        let mut task = service.clone();
        task.container_name = name.to_string();
        task.healthcheck = None;
        task.restart = "no".into();
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| EngineError::Build("empty command".into()))?;
        self.remove_container(name).await?;
        let mut config = self.container_config(&task);
        config.entrypoint = Some(vec![program.clone()]);
        config.cmd = Some(args.to_vec());
        let attachments = task.networks.attachments();
        let started = self
            .create_and_start(
                name,
                config,
                attachments.get(1..).unwrap_or_default(),
                &task.secret_files,
            )
            .await;
        if let Err(err) = started {
            // Created but not started (an executable the image lacks, say): nothing of
            // it stays behind.
            let _ = self.remove_container(name).await;
            return Err(err);
        }
        let options = LogsOptions::<String> {
            follow: true,
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let output = forward_output(self.docker().logs(name, Some(options)), log);
        let finished = tokio::time::timeout(timeout, output).await;
        let exit = match finished {
            Ok(result) => {
                result?;
                let info = self.docker().inspect_container(name, None).await?;
                Ok(info.state.and_then(|s| s.exit_code).unwrap_or(-1))
            }
            Err(_) => Err(EngineError::Timeout(format!(
                "{} did not finish within {}s",
                argv.join(" "),
                timeout.as_secs()
            ))),
        };
        self.remove_container(name).await?;
        exit
    }

    /// Runs `argv` inside a running container and returns its exit code.
    pub async fn exec(
        &self,
        container: &str,
        argv: &[String],
        timeout: Duration,
        log: &UnboundedSender<String>,
    ) -> Result<i64, EngineError> {
        let exec = self
            .docker()
            .create_exec(
                container,
                CreateExecOptions {
                    cmd: Some(argv.to_vec()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await?;
        let run = async {
            if let StartExecResults::Attached { output, .. } =
                self.docker().start_exec(&exec.id, None).await?
            {
                forward_output(output, log).await?;
            }
            Ok::<_, EngineError>(())
        };
        tokio::time::timeout(timeout, run).await.map_err(|_| {
            EngineError::Timeout(format!(
                "{} did not finish within {}s",
                argv.join(" "),
                timeout.as_secs()
            ))
        })??;
        let info = self.docker().inspect_exec(&exec.id).await?;
        Ok(info.exit_code.unwrap_or(-1))
    }
}
