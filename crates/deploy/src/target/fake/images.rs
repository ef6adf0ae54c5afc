//! The fake host's images: references mapped to ids, a build that adds its tag (or fails
//! under `BuildFails`), no registry to pull from.

use super::{injected, FakeTarget, Fault};
use crate::target::Images;
use async_trait::async_trait;
use capstan_engine::cleanup::OwnedImage;
use capstan_engine::images::{BuildRequest, ImageFacts, ImageLookup};
use capstan_engine::EngineError;
use tokio::sync::mpsc::UnboundedSender;

#[async_trait]
impl Images for FakeTarget {
    fn builds_with_buildkit(&self) -> bool {
        true
    }

    async fn build_image(
        &self,
        request: BuildRequest,
        _log: &UnboundedSender<String>,
    ) -> Result<String, EngineError> {
        if self.take_unreachable_build() {
            // The error a real engine gone away gives: a handle on a socket nobody serves.
            let gone = std::path::Path::new("/nonexistent/capstan-fake-engine.sock");
            let engine = capstan_engine::Engine::unconnected(gone, "fake")?;
            return Err(engine
                .image_id("any")
                .await
                .expect_err("nobody serves that socket"));
        }
        if self.has(Fault::BuildFails) {
            return Err(EngineError::Build(
                "injected fault: RUN exited with 1".into(),
            ));
        }
        self.add_image(&request.tag);
        Ok(self.state().images[&request.tag].clone())
    }

    async fn find_build(
        &self,
        _app: &str,
        _build_key: &str,
    ) -> Result<Option<String>, EngineError> {
        Ok(None)
    }

    async fn image_id(&self, reference: &str) -> Result<Option<String>, EngineError> {
        Ok(self.state().images.get(reference).cloned())
    }

    async fn image_facts(&self, _reference: &str) -> Result<ImageFacts, EngineError> {
        Ok(ImageFacts {
            exposed_ports: vec![8080],
            healthcheck: None,
        })
    }

    async fn look_up_image(&self, reference: &str) -> Result<ImageLookup, EngineError> {
        Ok(match self.state().images.contains_key(reference) {
            true => ImageLookup::Present,
            false => ImageLookup::Absent,
        })
    }

    async fn pull_image(
        &self,
        reference: &str,
        _log: &UnboundedSender<String>,
    ) -> Result<(), EngineError> {
        Err(injected(&format!("no registry answers for {reference}")))
    }

    async fn tag_image(&self, image: &str, reference: &str) -> Result<(), EngineError> {
        let mut state = self.state();
        let id = state
            .images
            .get(image)
            .cloned()
            .unwrap_or_else(|| image.to_string());
        state.images.insert(reference.to_string(), id);
        Ok(())
    }

    async fn stage_images(&self, _repository_glob: &str) -> Result<Vec<String>, EngineError> {
        Ok(Vec::new())
    }

    async fn app_images(&self, _app: &str) -> Result<Vec<String>, EngineError> {
        Ok(Vec::new())
    }

    async fn owned_images(&self, _dangling: bool) -> Result<Vec<OwnedImage>, EngineError> {
        Ok(Vec::new())
    }

    async fn remove_image(&self, reference: &str) -> Result<(), EngineError> {
        self.state().images.remove(reference);
        Ok(())
    }

    async fn remove_image_id(&self, id: &str) -> Result<(), EngineError> {
        self.state().images.retain(|_, v| v != id);
        Ok(())
    }
}
