//! BuildKit's progress (`moby.buildkit.trace` messages: vertices started, cached, done or
//! failed, and their output) turned into plain log lines, numbered per step as
//! `docker build --progress=plain` numbers them.

use crate::lines::LineAssembler;
use base64::Engine as _;
use bollard_buildkit_proto::moby::buildkit::v1::StatusResponse;
use prost::Message;
use std::collections::HashMap;

/// What one message of the build stream said.
#[derive(Debug, PartialEq)]
pub(crate) enum Event {
    /// Lines for the log.
    Lines(Vec<String>),
    /// The built image's id.
    ImageId(String),
    /// The build failed with this message.
    Error(String),
}

/// Per-build state: step numbers, what was already said about each step, and each
/// step's partial output line.
#[derive(Default)]
pub(crate) struct Progress {
    numbers: HashMap<String, usize>,
    started: HashMap<String, bool>,
    finished: HashMap<String, bool>,
    output: HashMap<String, LineAssembler>,
}

impl Progress {
    /// Reads one JSON line of the `/build` response.
    pub(crate) fn read(&mut self, line: &[u8]) -> Event {
        let Ok(message) = serde_json::from_slice::<serde_json::Value>(line) else {
            return Event::Lines(vec![String::from_utf8_lossy(line).trim().to_string()]);
        };
        if let Some(error) = message.get("error").and_then(|e| e.as_str()) {
            return Event::Error(error.trim().to_string());
        }
        match message.get("id").and_then(|i| i.as_str()) {
            Some("moby.buildkit.trace") => {
                let decoded = message
                    .get("aux")
                    .and_then(|a| a.as_str())
                    .and_then(|a| base64::engine::general_purpose::STANDARD.decode(a).ok())
                    .and_then(|bytes| StatusResponse::decode(bytes.as_slice()).ok());
                match decoded {
                    Some(status) => Event::Lines(self.status(status)),
                    None => Event::Lines(Vec::new()),
                }
            }
            Some("moby.image.id") => message
                .pointer("/aux/ID")
                .and_then(|i| i.as_str())
                .map(|id| Event::ImageId(id.to_string()))
                .unwrap_or(Event::Lines(Vec::new())),
            _ => {
                let text = message.get("stream").and_then(|s| s.as_str());
                Event::Lines(text.map(|t| vec![t.trim().to_string()]).unwrap_or_default())
            }
        }
    }

    fn number(&mut self, digest: &str) -> usize {
        let next = self.numbers.len() + 1;
        *self.numbers.entry(digest.to_string()).or_insert(next)
    }

    fn status(&mut self, status: StatusResponse) -> Vec<String> {
        let mut lines = Vec::new();
        for vertex in &status.vertexes {
            let n = self.number(&vertex.digest);
            if vertex.started.is_some() && !self.started.contains_key(&vertex.digest) {
                self.started.insert(vertex.digest.clone(), true);
                lines.push(format!("#{n} {}", vertex.name));
            }
            if vertex.cached && !self.finished.contains_key(&vertex.digest) {
                self.finished.insert(vertex.digest.clone(), true);
                if !self.started.contains_key(&vertex.digest) {
                    lines.push(format!("#{n} {}", vertex.name));
                }
                lines.push(format!("#{n} CACHED"));
            }
        }
        for log in &status.logs {
            let n = self.number(&log.vertex);
            let assembler = self.output.entry(log.vertex.clone()).or_default();
            for line in assembler.push(&log.msg) {
                lines.push(format!("#{n} {line}"));
            }
        }
        for vertex in &status.vertexes {
            if vertex.completed.is_none() || self.finished.contains_key(&vertex.digest) {
                continue;
            }
            self.finished.insert(vertex.digest.clone(), true);
            let n = self.number(&vertex.digest);
            if let Some(rest) = self.output.get_mut(&vertex.digest).and_then(|o| o.finish()) {
                lines.push(format!("#{n} {rest}"));
            }
            match (vertex.error.is_empty(), &vertex.started, &vertex.completed) {
                (false, _, _) => lines.push(format!("#{n} ERROR: {}", vertex.error)),
                (true, Some(start), Some(end)) => {
                    let secs = (end.seconds - start.seconds) as f64
                        + f64::from(end.nanos - start.nanos) / 1e9;
                    lines.push(format!("#{n} DONE {secs:.1}s"));
                }
                _ => lines.push(format!("#{n} DONE")),
            }
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard_buildkit_proto::google::protobuf::Timestamp;
    use bollard_buildkit_proto::moby::buildkit::v1::{Vertex, VertexLog};

    fn trace(status: StatusResponse) -> Vec<u8> {
        let aux = base64::engine::general_purpose::STANDARD.encode(status.encode_to_vec());
        serde_json::to_vec(&serde_json::json!({"id": "moby.buildkit.trace", "aux": aux})).unwrap()
    }

    fn at(seconds: i64) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos: 0 })
    }

    #[test]
    fn steps_are_numbered_and_their_output_is_whole_lines() {
        let mut progress = Progress::default();
        let run = Vertex {
            digest: "sha256:a".into(),
            name: "[2/3] RUN echo hi".into(),
            started: at(10),
            ..Default::default()
        };
        let first = StatusResponse {
            vertexes: vec![run.clone()],
            logs: vec![VertexLog {
                vertex: "sha256:a".into(),
                msg: b"hel".to_vec(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            progress.read(&trace(first)),
            Event::Lines(vec!["#1 [2/3] RUN echo hi".into()])
        );
        let done = StatusResponse {
            vertexes: vec![Vertex {
                completed: at(12),
                ..run
            }],
            logs: vec![VertexLog {
                vertex: "sha256:a".into(),
                msg: b"lo\nwor".to_vec(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            progress.read(&trace(done)),
            Event::Lines(vec![
                "#1 hello".into(),
                "#1 wor".into(),
                "#1 DONE 2.0s".into()
            ])
        );
    }

    #[test]
    fn failures_cached_steps_and_the_image_id_are_read() {
        let mut progress = Progress::default();
        let cached = StatusResponse {
            vertexes: vec![Vertex {
                digest: "sha256:b".into(),
                name: "[1/2] FROM busybox".into(),
                cached: true,
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            progress.read(&trace(cached)),
            Event::Lines(vec!["#1 [1/2] FROM busybox".into(), "#1 CACHED".into()])
        );
        let failed = StatusResponse {
            vertexes: vec![Vertex {
                digest: "sha256:c".into(),
                name: "[2/2] RUN false".into(),
                started: at(1),
                completed: at(2),
                error: "exit code: 1".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            progress.read(&trace(failed)),
            Event::Lines(vec![
                "#2 [2/2] RUN false".into(),
                "#2 ERROR: exit code: 1".into()
            ])
        );
        assert_eq!(
            progress.read(br#"{"id":"moby.image.id","aux":{"ID":"sha256:123"}}"#),
            Event::ImageId("sha256:123".into())
        );
        assert_eq!(
            progress.read(br#"{"errorDetail":{"message":"boom"},"error":"boom\n"}"#),
            Event::Error("boom".into())
        );
    }
}
