//! Output that arrives in arbitrary chunks (a build step that prints half a line, waits,
//! then the rest) assembled into whole lines before anything sees it, so a secret split
//! across two chunks is still masked as one.

/// A line longer than this is passed on in pieces rather than held without bound.
const MAX_LINE: usize = 64 * 1024;

/// Collects chunks of bytes and hands out complete lines.
#[derive(Debug, Default)]
pub struct LineAssembler {
    partial: Vec<u8>,
}

impl LineAssembler {
    /// Adds a chunk; returns the lines it completed (without line endings, blank lines
    /// dropped).
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.partial.extend_from_slice(chunk);
        let mut lines = Vec::new();
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            push_line(&mut lines, &line[..line.len() - 1]);
        }
        if self.partial.len() > MAX_LINE {
            let line = std::mem::take(&mut self.partial);
            push_line(&mut lines, &line);
        }
        lines
    }

    /// What is left once the stream has ended.
    pub fn finish(&mut self) -> Option<String> {
        let mut lines = Vec::new();
        push_line(&mut lines, &std::mem::take(&mut self.partial));
        lines.pop()
    }
}

fn push_line(lines: &mut Vec<String>, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end_matches('\r');
    if !text.trim().is_empty() {
        lines.push(text.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_chunks_come_out_whole() {
        let mut lines = LineAssembler::default();
        assert!(lines.push(b"token=s3c").is_empty());
        assert_eq!(lines.push(b"r3t-value\nnext "), vec!["token=s3cr3t-value"]);
        assert_eq!(lines.push(b"line\r\n\n"), vec!["next line"]);
        // A multi-byte character split between chunks survives.
        assert!(lines.push(&"é".as_bytes()[..1]).is_empty());
        assert!(lines.push(&"é".as_bytes()[1..]).is_empty());
        assert_eq!(lines.finish(), Some("é".to_string()));
        assert_eq!(lines.finish(), None);
    }
}
