//! An app's runtime output: the stdout and stderr of every running container of the app
//! (each replica and each compose companion), each line prefixed with the container it came
//! from and with the app's secret values masked, as in deployment logs; all of them or one.

use crate::logs::Masker;
use crate::{ActionError, Deployer};
use capstan_core::AppName;
use futures::stream::BoxStream;
use futures::StreamExt;

/// At most this many lines per container are asked for with `tail`.
pub const MAX_TAIL: usize = 10_000;

impl Deployer {
    /// The last `tail` lines of each running container of `app` (or only of those
    /// `containers` names, which must be among them; none: all), one container after the
    /// other; with `follow`, then every new line of any of them as it comes, until all of
    /// them stop or the reader goes away.
    pub async fn app_output(
        &self,
        app: &AppName,
        containers: &[&str],
        tail: usize,
        follow: bool,
    ) -> Result<BoxStream<'static, String>, ActionError> {
        let here = self.for_app_named(app).await?;
        here.app_output_here(app, containers, tail, follow).await
    }

    /// [`Self::app_output`] on this deployer's server.
    async fn app_output_here(
        &self,
        app: &AppName,
        containers: &[&str],
        tail: usize,
        follow: bool,
    ) -> Result<BoxStream<'static, String>, ActionError> {
        if tail > MAX_TAIL {
            return Err(ActionError::Invalid(format!(
                "tail: at most {MAX_TAIL} lines per container"
            )));
        }
        if self.target().swarm().is_some() {
            return self.swarm_output(app, containers, tail, follow).await;
        }
        let containers = self.chosen_containers(app, containers).await?;
        if containers.is_empty() {
            return Err(ActionError::Conflict(format!(
                "{app} has no running containers: deploy it first"
            )));
        }
        let secrets = self.secret_values(app).await?;
        let masker = Masker::new(secrets.iter().map(|s| s.value.as_str()));
        let streams: Vec<BoxStream<'static, String>> = containers
            .iter()
            .map(|container| {
                let shown = container.shown.clone();
                let masker = masker.clone();
                self.target()
                    .output_lines(&container.id, tail, follow)
                    .map(move |line| match line {
                        Ok(line) => format!("[{shown}] {}", masker.mask(&line)),
                        Err(err) => format!("[{shown}] (cannot read the output: {err})"),
                    })
                    .boxed()
            })
            .collect();
        Ok(if follow {
            futures::stream::select_all(streams).boxed()
        } else {
            futures::stream::iter(streams).flatten().boxed()
        })
    }
}
