//! A service's tasks and output, asked of the manager over plain HTTP on the engine's
//! connection (`GET /tasks`, `GET /services/{id}/logs`: bollard 0.18 has neither): which
//! tasks run, where and with which image, and the service's last log lines as whole lines.

use super::SwarmError;
use crate::{Engine, EngineError};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};

/// One task of a service as the manager reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFacts {
    pub id: String,
    /// `running`, `starting`, `failed`, `shutdown`, ...
    pub state: String,
    pub desired_state: String,
    pub image: String,
    /// The task's addresses on its networks, without the prefix length.
    pub addresses: Vec<String>,
    /// The engine's message or error for the task.
    pub message: String,
}

fn task_facts(task: &serde_json::Value) -> TaskFacts {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let status = &task["Status"];
    let addresses = task["NetworksAttachments"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|n| n["Addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| {
            a.as_str()
                .map(|a| a.split('/').next().unwrap_or(a).to_string())
        })
        .collect();
    let err = text(&status["Err"]);
    TaskFacts {
        id: text(&task["ID"]),
        state: text(&status["State"]),
        desired_state: text(&task["DesiredState"]),
        image: text(&task["Spec"]["ContainerSpec"]["Image"]),
        addresses,
        message: if err.is_empty() {
            text(&status["Message"])
        } else {
            err
        },
    }
}

/// The lines of a multiplexed log stream (8-byte frame headers), or of a plain one.
fn log_lines(body: &[u8]) -> Vec<String> {
    let mut text = Vec::new();
    let mut rest = body;
    let framed = body.len() >= 8 && matches!(body[0], 0..=2) && body[1..4] == [0, 0, 0];
    if framed {
        while rest.len() >= 8 {
            let size = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
            let end = (8 + size).min(rest.len());
            text.extend_from_slice(&rest[8..end]);
            rest = &rest[end..];
        }
    } else {
        text.extend_from_slice(body);
    }
    String::from_utf8_lossy(&text)
        .lines()
        .map(|l| l.to_string())
        .collect()
}

impl Engine {
    async fn get_raw(&self, path_and_query: &str) -> Result<Vec<u8>, SwarmError> {
        let api = self.api_version();
        let request = hyper::Request::get(format!("/v{api}{path_and_query}"))
            .header(hyper::header::HOST, "docker")
            .body(Full::new(Bytes::new()))
            .map_err(|e| EngineError::Build(format!("a request to the engine: {e}")))?;
        let response = crate::buildkit::connection::send(self.address(), request).await?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| EngineError::Build(format!("reading the engine's answer: {e}")))?
            .to_bytes();
        if !status.is_success() {
            return Err(EngineError::Build(format!(
                "GET {path_and_query}: {status}: {}",
                String::from_utf8_lossy(&body).trim()
            ))
            .into());
        }
        Ok(body.to_vec())
    }

    /// The tasks of service `name` (every state Swarm still keeps).
    pub async fn service_tasks(&self, name: &str) -> Result<Vec<TaskFacts>, SwarmError> {
        let filters = serde_json::json!({ "service": [name] }).to_string();
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("filters", &filters)
            .finish();
        let body = self.get_raw(&format!("/tasks?{query}")).await?;
        let tasks: Vec<serde_json::Value> = serde_json::from_slice(&body)
            .map_err(|e| EngineError::Build(format!("the engine's task list: {e}")))?;
        Ok(tasks.iter().map(task_facts).collect())
    }

    /// The last `tail` lines service `name`'s tasks wrote (stdout and stderr).
    pub async fn service_log_tail(
        &self,
        name: &str,
        tail: usize,
    ) -> Result<Vec<String>, SwarmError> {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("stdout", "1")
            .append_pair("stderr", "1")
            .append_pair("tail", &tail.to_string())
            .finish();
        let body = self
            .get_raw(&format!("/services/{name}/logs?{query}"))
            .await?;
        Ok(log_lines(&body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_reads_its_state_image_and_addresses() {
        let task = serde_json::json!({
            "ID": "t1", "DesiredState": "running",
            "Spec": {"ContainerSpec": {"Image": "ns/app:3"}},
            "Status": {"State": "running", "Message": "started"},
            "NetworksAttachments": [{"Addresses": ["10.0.1.5/24"]}]
        });
        let facts = task_facts(&task);
        assert_eq!(facts.state, "running");
        assert_eq!(facts.image, "ns/app:3");
        assert_eq!(facts.addresses, vec!["10.0.1.5".to_string()]);
        assert_eq!(facts.message, "started");
        let failed = serde_json::json!({"Status": {"State": "failed", "Err": "unhealthy"}});
        assert_eq!(task_facts(&failed).message, "unhealthy");
    }

    #[test]
    fn framed_and_plain_logs_split_into_lines() {
        let mut framed = vec![1, 0, 0, 0, 0, 0, 0, 6];
        framed.extend_from_slice(b"hello\n");
        framed.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 4]);
        framed.extend_from_slice(b"oops");
        assert_eq!(log_lines(&framed), vec!["hello", "oops"]);
        assert_eq!(log_lines(b"a\nb\n"), vec!["a", "b"]);
    }
}
