//! The running output of a container (stdout and stderr) as a stream of lines, for an
//! app's runtime logs.

use crate::{Engine, EngineError};
use bollard::container::{LogOutput, LogsOptions};
use futures::stream::BoxStream;
use futures::StreamExt;

impl Engine {
    /// The last `tail` lines of a container's output, then (with `follow`) every new line
    /// until the container stops or the stream is dropped.
    pub fn output_lines(
        &self,
        container: &str,
        tail: usize,
        follow: bool,
    ) -> BoxStream<'static, Result<String, EngineError>> {
        let options = LogsOptions::<String> {
            stdout: true,
            stderr: true,
            follow,
            tail: tail.to_string(),
            ..Default::default()
        };
        let chunks = self.docker().logs(container, Some(options));
        // Docker sends whole lines per frame for most apps, but a frame may hold several
        // lines or part of one: reassemble them.
        let mut lines = crate::lines::LineAssembler::default();
        let mut ended = false;
        let stream = chunks
            .map(Some)
            .chain(futures::stream::once(async { None }))
            .flat_map(move |item| {
                let out: Vec<Result<String, EngineError>> = match item {
                    Some(Ok(LogOutput::StdOut { message } | LogOutput::StdErr { message })) => {
                        lines.push(&message).into_iter().map(Ok).collect()
                    }
                    Some(Ok(_)) => Vec::new(),
                    Some(Err(err)) => vec![Err(err.into())],
                    None if !ended => {
                        ended = true;
                        lines.finish().into_iter().map(Ok).collect()
                    }
                    None => Vec::new(),
                };
                futures::stream::iter(out)
            });
        stream.boxed()
    }
}
