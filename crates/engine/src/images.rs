//! Images: building from a context tar with every output line streamed out (the earlier
//! stages of a multi-stage build kept under `stage-<n>` tags), looking up, and removing.

use crate::{is_not_found, Engine, EngineError};
use bollard::image::{BuildImageOptions, ListImagesOptions, RemoveImageOptions};
use futures::StreamExt;
use std::collections::HashMap;
use tokio::sync::mpsc::UnboundedSender;

/// Follows the classic builder's output to find the last image of each stage: a stage
/// starts at `Step N/M : FROM …`, and each step ends with ` ---> <id>`.
#[derive(Debug, Default)]
pub(crate) struct StageTracker {
    /// The newest image id seen in each stage so far.
    stages: Vec<Option<String>>,
}

impl StageTracker {
    pub(crate) fn see(&mut self, line: &str) {
        let line = line.trim();
        if let Some((_, instruction)) = line.strip_prefix("Step ").and_then(|l| l.split_once(" : "))
        {
            if instruction.len() >= 5 && instruction[..5].eq_ignore_ascii_case("FROM ") {
                self.stages.push(None);
            }
            return;
        }
        if let Some(id) = line.strip_prefix("---> ") {
            let id = id.trim();
            let is_id = id.len() >= 12 && id.chars().all(|c| c.is_ascii_hexdigit());
            if let (true, Some(current)) = (is_id, self.stages.last_mut()) {
                *current = Some(id.to_string());
            }
        }
    }

    /// The last image of every stage but the final one (the final one is the result).
    pub(crate) fn earlier_stages(&self) -> Vec<String> {
        let n = self.stages.len().saturating_sub(1);
        self.stages[..n].iter().flatten().cloned().collect()
    }
}

/// What to build and how to tag it.
pub struct BuildRequest {
    pub context_tar: Vec<u8>,
    /// Dockerfile path inside the context.
    pub dockerfile: String,
    /// The Dockerfile stage to build; the last one when `None`.
    pub target: Option<String>,
    /// `ARG` values: the caller masks them in what it logs.
    pub build_args: HashMap<String, String>,
    /// Build secrets by id: BuildKit serves them to `RUN --mount=type=secret`; the
    /// classic builder gets them as build arguments (kept in the image's history).
    pub secrets: HashMap<String, String>,
    pub tag: String,
    pub labels: HashMap<String, String>,
    pub no_cache: bool,
}

/// What an image's config declares that a deployment can use when the app's settings
/// are silent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageFacts {
    /// TCP ports of `EXPOSE`, ascending.
    pub exposed_ports: Vec<u16>,
    /// The image's `HEALTHCHECK` test (`["CMD", ...]` or `["CMD-SHELL", "..."]`), unless it
    /// is absent or `NONE`.
    pub healthcheck: Option<ImageHealthcheck>,
}

/// An image's `HEALTHCHECK`, durations in seconds (`None` where the image left the default).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageHealthcheck {
    pub test: Vec<String>,
    pub interval_secs: Option<f64>,
    pub timeout_secs: Option<f64>,
    pub start_period_secs: Option<f64>,
    pub retries: Option<u32>,
}

/// What the engine says of an image reference (see [`Engine::look_up_image`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageLookup {
    Present,
    Absent,
    /// Not a reference the engine can read, with its reason.
    Unreadable(String),
}

impl Engine {
    /// The ports and health check an image declares.
    pub async fn image_facts(&self, reference: &str) -> Result<ImageFacts, EngineError> {
        let image = self.docker().inspect_image(reference).await?;
        let Some(config) = image.config else {
            return Ok(ImageFacts::default());
        };
        let mut exposed_ports: Vec<u16> = config
            .exposed_ports
            .unwrap_or_default()
            .keys()
            .filter_map(|key| {
                let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
                (proto == "tcp").then(|| port.parse().ok()).flatten()
            })
            .collect();
        exposed_ports.sort_unstable();
        let secs = |nanos: Option<i64>| nanos.filter(|n| *n > 0).map(|n| n as f64 / 1e9);
        let healthcheck = config.healthcheck.and_then(|h| {
            let test = h.test.unwrap_or_default();
            if test.is_empty() || test[0] == "NONE" {
                return None;
            }
            Some(ImageHealthcheck {
                test,
                interval_secs: secs(h.interval),
                timeout_secs: secs(h.timeout),
                start_period_secs: secs(h.start_period),
                retries: h.retries.filter(|r| *r > 0).map(|r| r as u32),
            })
        });
        Ok(ImageFacts {
            exposed_ports,
            healthcheck,
        })
    }

    /// Builds an image, sending each line of build output to `log` as it arrives.
    /// Returns the image id.
    pub async fn build_image(
        &self,
        request: BuildRequest,
        log: &UnboundedSender<String>,
    ) -> Result<String, EngineError> {
        if self.builds_with_buildkit() {
            return self.build_with_buildkit(request, log).await;
        }
        let mut request = request;
        let secrets = std::mem::take(&mut request.secrets);
        request.build_args.extend(secrets);
        let options = BuildImageOptions {
            dockerfile: request.dockerfile.clone(),
            t: request.tag.clone(),
            labels: request.labels.clone(),
            rm: true,
            forcerm: true,
            nocache: request.no_cache,
            target: request.target.clone().unwrap_or_default(),
            buildargs: request.build_args.clone(),
            ..Default::default()
        };
        let mut stream = self
            .docker()
            .build_image(options, None, Some(request.context_tar.into()));
        let mut last_error = None;
        let mut output = crate::lines::LineAssembler::default();
        let mut stages = StageTracker::default();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(text) = info.stream {
                        for line in output.push(text.as_bytes()) {
                            stages.see(&line);
                            let _ = log.send(line);
                        }
                    }
                    if let Some(status) = info.status {
                        let _ = log.send(status);
                    }
                    if let Some(error) = info.error {
                        let _ = log.send(format!("error: {error}"));
                        last_error = Some(error);
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    let _ = log.send(format!("error: {error}"));
                    last_error = Some(error);
                }
                Err(err) => return Err(EngineError::Build(err.to_string())),
            }
        }
        if let Some(rest) = output.finish() {
            stages.see(&rest);
            let _ = log.send(rest);
        }
        if let Some(error) = last_error {
            return Err(EngineError::Build(error.trim().to_string()));
        }
        let id = self.image_id(&request.tag).await?.ok_or_else(|| {
            EngineError::Build(format!("build finished but {} is missing", request.tag))
        })?;
        self.tag_stage_images(&request.tag, &stages.earlier_stages(), log)
            .await;
        Ok(id)
    }

    /// Tags the last image of each earlier stage of a multi-stage build
    /// `<repository>:stage-<n>` (the classic builder leaves them untagged and unlabelled,
    /// so nothing could find them): they stay as the next build's cache, and app deletion
    /// and cleanup find them by name. The image a tag moved away from is removed when
    /// nothing else holds it.
    async fn tag_stage_images(&self, tag: &str, stages: &[String], log: &UnboundedSender<String>) {
        let Some((repository, _)) = tag.rsplit_once(':') else {
            return;
        };
        for (n, image) in stages.iter().enumerate() {
            let stage_tag = format!("{repository}:stage-{n}");
            let before = self.image_id(&stage_tag).await.ok().flatten();
            if self.tag_image(image, &stage_tag).await.is_err() {
                continue;
            }
            let _ = log.send(format!("kept stage {n} of the build as {stage_tag}"));
            let moved = |old: &String| {
                !old.trim_start_matches("sha256:")
                    .starts_with(image.as_str())
            };
            if let Some(old) = before.filter(moved) {
                // Still a parent or tagged elsewhere: the engine refuses, and that is fine.
                let _ = self.remove_image(&old).await;
            }
        }
    }

    /// The images `stage-<n>` tags hold for `repository_glob` (`<instance>/<app>` or a
    /// glob like `<instance>/*`), as references.
    pub async fn stage_images(&self, repository_glob: &str) -> Result<Vec<String>, EngineError> {
        let options = ListImagesOptions {
            filters: HashMap::from([(
                "reference".to_string(),
                vec![format!("{repository_glob}:stage-*")],
            )]),
            ..Default::default()
        };
        let list = self.docker().list_images(Some(options)).await?;
        Ok(list
            .into_iter()
            .flat_map(|i| i.repo_tags)
            .filter(|t| t.contains(":stage-"))
            .collect())
    }

    /// The id of an image by reference, or `None` if the engine has no such image.
    pub async fn image_id(&self, reference: &str) -> Result<Option<String>, EngineError> {
        match self.docker().inspect_image(reference).await {
            Ok(image) => Ok(image.id),
            Err(err) if is_not_found(&err) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// What the engine says of an image reference without pulling anything: on the
    /// engine, not on it (a deployment pulls it), or not a reference it can read (its
    /// reason). The same lookup a deployment of an image source starts with.
    pub async fn look_up_image(&self, reference: &str) -> Result<ImageLookup, EngineError> {
        match self.docker().inspect_image(reference).await {
            Ok(_) => Ok(ImageLookup::Present),
            Err(err) if is_not_found(&err) => Ok(ImageLookup::Absent),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 400,
                message,
            }) => Ok(ImageLookup::Unreadable(message)),
            Err(err) => Err(err.into()),
        }
    }

    /// Pulls `reference`, sending progress lines to `log`.
    pub async fn pull_image(
        &self,
        reference: &str,
        log: &UnboundedSender<String>,
    ) -> Result<(), EngineError> {
        let options = bollard::image::CreateImageOptions {
            from_image: reference.to_string(),
            ..Default::default()
        };
        let mut stream = self.docker().create_image(Some(options), None, None);
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(status) = info.status {
                        let _ = log.send(status);
                    }
                }
                Err(err) => {
                    return Err(EngineError::Build(format!(
                        "cannot pull {reference}: {err}"
                    )))
                }
            }
        }
        Ok(())
    }

    /// The id of an image this instance built for `app` with the given build key (a hash
    /// of the build context and settings), if one is still on the engine.
    pub async fn find_build(
        &self,
        app: &str,
        build_key: &str,
    ) -> Result<Option<String>, EngineError> {
        let images = self
            .images_labelled(
                app,
                Some(&capstan_compose::labels::filter(
                    capstan_compose::labels::BUILD_KEY,
                    build_key,
                )),
            )
            .await?;
        Ok(images.into_iter().next().map(|i| i.id))
    }

    /// Adds the tag `reference` (`repo:tag`) to an image.
    pub async fn tag_image(&self, image: &str, reference: &str) -> Result<(), EngineError> {
        let (repo, tag) = reference.rsplit_once(':').unwrap_or((reference, "latest"));
        self.docker()
            .tag_image(
                image,
                Some(bollard::image::TagImageOptions {
                    repo: repo.to_string(),
                    tag: tag.to_string(),
                }),
            )
            .await?;
        Ok(())
    }

    /// Image references (`repo:tag`) this instance built for `app`.
    pub async fn app_images(&self, app: &str) -> Result<Vec<String>, EngineError> {
        let images = self.images_labelled(app, None).await?;
        Ok(images.into_iter().flat_map(|i| i.repo_tags).collect())
    }

    /// Images this instance built for `app`, optionally with one more label filter.
    async fn images_labelled(
        &self,
        app: &str,
        extra: Option<&str>,
    ) -> Result<Vec<bollard::models::ImageSummary>, EngineError> {
        let mut labels = vec![
            capstan_compose::labels::filter(capstan_compose::labels::INSTANCE, self.instance()),
            capstan_compose::labels::filter(capstan_compose::labels::APP, app),
        ];
        labels.extend(extra.map(str::to_string));
        let options = ListImagesOptions {
            filters: HashMap::from([("label".to_string(), labels)]),
            ..Default::default()
        };
        Ok(self.docker().list_images(Some(options)).await?)
    }

    /// Removes an image reference; a missing image is not an error.
    pub async fn remove_image(&self, reference: &str) -> Result<(), EngineError> {
        let options = RemoveImageOptions {
            force: false,
            noprune: false,
        };
        match self
            .docker()
            .remove_image(reference, Some(options), None)
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if is_not_found(&err) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::StageTracker;

    #[test]
    fn finds_the_last_image_of_each_earlier_stage() {
        let mut tracker = StageTracker::default();
        for line in [
            "Step 1/6 : FROM busybox:stable AS builder",
            " ---> c95eb46d5b6e",
            "Step 2/6 : RUN echo hi > /x",
            " ---> Running in 400accf6e59f",
            "hi",
            "Removing intermediate container 400accf6e59f",
            " ---> d7c59488f6a1",
            "Step 3/6 : from busybox:stable AS test",
            " ---> Using cache",
            " ---> 02c81b843a8d",
            "Step 4/6 : FROM busybox:stable",
            " ---> c95eb46d5b6e",
            "Step 5/6 : COPY --from=builder /x /x",
            " ---> 1b18ee2d5f58",
            "Successfully built 1b18ee2d5f58",
        ] {
            tracker.see(line);
        }
        assert_eq!(tracker.earlier_stages(), ["d7c59488f6a1", "02c81b843a8d"]);
        let mut single = StageTracker::default();
        single.see("Step 1/2 : FROM scratch");
        single.see(" ---> abcdefabcdef");
        assert!(single.earlier_stages().is_empty());
    }
}
