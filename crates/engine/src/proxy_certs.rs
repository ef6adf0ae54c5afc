//! What the running proxy knows about its certificates, read through the Docker API: its
//! ACME store (`/data/acme.json`, copied out of the proxy container, never written) and
//! the last lines of its log, where Traefik reports certificates it failed to obtain.

use crate::{is_not_found, Engine, EngineError};
use bollard::container::DownloadFromContainerOptions;
use futures::{StreamExt, TryStreamExt};
use std::io::Read;

/// Where Traefik keeps its ACME store inside the proxy container (`proxy/traefik.yml.j2`).
pub const ACME_STORE_PATH: &str = "/data/acme.json";
/// The most of an ACME store read (a store with thousands of certificates is far smaller).
const ACME_STORE_MAX: u64 = 32 * 1024 * 1024;

impl Engine {
    /// The proxy's ACME store as Traefik wrote it; `None` when there is no proxy or no
    /// store yet (Traefik writes it with its first account or certificate).
    pub async fn proxy_acme_store(&self) -> Result<Option<Vec<u8>>, EngineError> {
        let options = DownloadFromContainerOptions {
            path: ACME_STORE_PATH,
        };
        let mut chunks = self
            .docker()
            .download_from_container(&self.proxy_container_name(), Some(options));
        let mut tar_bytes = Vec::new();
        while let Some(chunk) = chunks.next().await {
            match chunk {
                Ok(chunk) => {
                    tar_bytes.extend_from_slice(&chunk);
                    // The tar adds headers and padding around the file.
                    if tar_bytes.len() as u64 > ACME_STORE_MAX + 64 * 1024 {
                        return Err(EngineError::Proxy(format!(
                            "the ACME store is larger than {ACME_STORE_MAX} bytes"
                        )));
                    }
                }
                Err(err) if is_not_found(&err) => return Ok(None),
                Err(err) => return Err(err.into()),
            }
        }
        first_file_of_tar(&tar_bytes).map(Some)
    }

    /// The last `lines` lines the proxy logged (stdout and stderr), oldest first.
    pub async fn proxy_log_tail(&self, lines: usize) -> Result<Vec<String>, EngineError> {
        match self
            .output_lines(&self.proxy_container_name(), lines, false)
            .try_collect()
            .await
        {
            Err(EngineError::Docker(err)) if is_not_found(&err) => Ok(Vec::new()),
            other => other,
        }
    }
}

/// The contents of the first regular file of a tar archive.
fn first_file_of_tar(tar_bytes: &[u8]) -> Result<Vec<u8>, EngineError> {
    let mut archive = tar::Archive::new(tar_bytes);
    for entry in archive.entries()? {
        let entry = entry?;
        if entry.header().entry_type().is_file() {
            let mut contents = Vec::new();
            entry.take(ACME_STORE_MAX).read_to_end(&mut contents)?;
            return Ok(contents);
        }
    }
    Err(EngineError::Proxy(format!(
        "{ACME_STORE_PATH} in the proxy is not a file"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_file_out_of_the_engines_tar() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(4);
        header.set_mode(0o600);
        builder
            .append_data(&mut header, "acme.json", &b"{}\n\n"[..])
            .unwrap();
        let bytes = builder.into_inner().unwrap();
        assert_eq!(first_file_of_tar(&bytes).unwrap(), b"{}\n\n");
        let empty = tar::Builder::new(Vec::new()).into_inner().unwrap();
        assert!(first_file_of_tar(&empty).is_err());
    }
}
