//! A small reader of `text/event-stream` (server-sent events, as the WHATWG spec parses them):
//! fed the bytes as they arrive, in chunks cut anywhere, it hands back whole events.

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The `id:` field of this event, if it had one.
    pub id: Option<String>,
    /// `event:`; `message` when absent.
    pub event: String,
    /// The `data:` lines, joined by `\n`.
    pub data: String,
}

/// The reader's state between chunks.
#[derive(Debug, Default)]
pub struct Parser {
    /// Bytes of a line not yet ended.
    partial: Vec<u8>,
    /// A `\r` ended the last chunk: a `\n` first in the next one belongs to it.
    after_cr: bool,
    id: Option<String>,
    event: Option<String>,
    data: Option<String>,
}

impl Parser {
    /// The events completed by `chunk`, in order.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        for &byte in chunk {
            if self.after_cr {
                self.after_cr = false;
                if byte == b'\n' {
                    continue;
                }
            }
            match byte {
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.partial);
                    if let Some(event) = self.line(&String::from_utf8_lossy(&line)) {
                        events.push(event);
                    }
                }
                _ => self.partial.push(byte),
            }
        }
        events
    }

    /// Takes one line; a blank one ends the event being read.
    fn line(&mut self, line: &str) -> Option<Event> {
        if line.is_empty() {
            let data = self.data.take();
            let event = self.event.take();
            let id = self.id.take();
            return data.map(|data| Event {
                id,
                event: event.unwrap_or_else(|| "message".to_owned()),
                data,
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "event" => self.event = Some(value.to_owned()),
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: Option<&str>, data: &str) -> Event {
        Event {
            id: id.map(str::to_owned),
            event: "invocation".into(),
            data: data.into(),
        }
    }

    #[test]
    fn events_are_read_whatever_the_chunks() {
        let text = b": keep-alive\n\nid: 7\nevent: invocation\ndata: {\"seq\":7}\n\nid: 8\r\nevent: invocation\r\ndata: {\"seq\":8}\r\n\r\n";
        let expected = vec![
            event(Some("7"), "{\"seq\":7}"),
            event(Some("8"), "{\"seq\":8}"),
        ];
        let mut whole = Parser::default();
        assert_eq!(whole.feed(text), expected);
        for size in 1..8 {
            let mut parser = Parser::default();
            let events: Vec<Event> = text.chunks(size).flat_map(|c| parser.feed(c)).collect();
            assert_eq!(events, expected, "chunks of {size}");
        }
    }

    #[test]
    fn data_lines_join_and_comments_and_unknown_fields_are_skipped() {
        let mut parser = Parser::default();
        let events = parser.feed(b"retry: 10\ndata: a\n: note\ndata:b\nfoo: x\n\ndata\n\n");
        assert_eq!(
            events,
            vec![
                Event {
                    id: None,
                    event: "message".into(),
                    data: "a\nb".into()
                },
                Event {
                    id: None,
                    event: "message".into(),
                    data: String::new()
                }
            ]
        );
        // An event without data is not dispatched; an unfinished one waits.
        assert!(parser.feed(b"id: 3\n\nevent: x\ndata: y").is_empty());
        assert_eq!(parser.feed(b"\n\n")[0].data, "y");
    }
}
