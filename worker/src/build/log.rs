//! A build's log as the worker keeps it: the end of what the build wrote and what the worker
//! said about it, bounded.

/// The most of a build's log kept: its end.
const MAX_LOG_BYTES: usize = 256 * 1024;

/// A bounded log: the end of what was written, with a note that the start was cut.
#[derive(Default)]
pub struct Log {
    text: Vec<u8>,
    cut: bool,
}

impl Log {
    pub fn push(&mut self, bytes: &[u8]) {
        self.text.extend_from_slice(bytes);
        if self.text.len() > MAX_LOG_BYTES {
            let excess = self.text.len() - MAX_LOG_BYTES;
            self.text.drain(..excess);
            self.cut = true;
        }
    }

    pub fn line(&mut self, line: &str) {
        self.push(format!("{line}\n").as_bytes());
    }

    pub fn into_string(self) -> String {
        let text = String::from_utf8_lossy(&self.text).into_owned();
        if self.cut {
            format!("[the log's start was cut]\n{text}")
        } else {
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_log_keeps_its_end_and_says_its_start_was_cut() {
        let mut log = Log::default();
        log.line("first");
        assert_eq!(log.into_string(), "first\n");
        let mut log = Log::default();
        log.push(&vec![b'x'; MAX_LOG_BYTES]);
        log.line("last");
        let text = log.into_string();
        assert!(text.starts_with("[the log's start was cut]\n"));
        assert!(text.ends_with("xlast\n"));
    }
}
