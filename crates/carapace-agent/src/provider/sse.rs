//! A Server-Sent Events parser over a byte stream (the parts of the HTML spec model APIs use):
//! lines end with `\n` or `\r\n`; `event:` names the event; `data:` lines are joined with `\n`;
//! a blank line dispatches; `:` lines are comments; other fields are ignored. Bytes are
//! buffered until a whole line is there, so chunk boundaries anywhere (even inside a UTF-8
//! character) are fine.

use bytes::{Buf, BytesMut};
use futures_util::{Stream, StreamExt};

use super::ProviderError;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// `event:` (empty when none was given).
    pub event: String,
    /// The joined `data:` lines.
    pub data: String,
}

/// Longest line (a single JSON chunk) and longest event accepted; beyond it the stream is
/// refused.
const MAX_LINE: usize = 8 << 20;

/// Bytes waiting for their line end. Each byte is looked at once while searching for `\n`
/// (`scanned` remembers how far the search got), so a long line arriving in small chunks costs
/// time linear in its length, not quadratic.
#[derive(Default)]
struct LineBuffer {
    buf: BytesMut,
    /// Bytes at the front of `buf` known to hold no `\n`.
    scanned: usize,
    /// Bytes examined in total (what the linear-time test counts).
    examined: u64,
}

impl LineBuffer {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    fn len(&self) -> usize {
        self.buf.len()
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.scanned = 0;
    }

    /// The next whole line without its `\n` or `\r\n`, if one is buffered.
    fn next_line(&mut self) -> Option<BytesMut> {
        let rest = self.buf.get(self.scanned..).unwrap_or_default();
        match rest.iter().position(|b| *b == b'\n') {
            None => {
                self.examined += rest.len() as u64;
                self.scanned = self.buf.len();
                None
            }
            Some(off) => {
                self.examined += off as u64 + 1;
                let pos = self.scanned + off;
                self.scanned = 0;
                let mut line = self.buf.split_to(pos + 1);
                line.truncate(pos);
                if line.last() == Some(&b'\r') {
                    line.truncate(pos - 1);
                }
                Some(line)
            }
        }
    }
}

pub(crate) fn events<S>(input: S) -> impl Stream<Item = Result<SseEvent, ProviderError>> + Send
where
    S: Stream<Item = Result<bytes::Bytes, ProviderError>> + Send + 'static,
{
    struct St<S> {
        input: std::pin::Pin<Box<S>>,
        buf: LineBuffer,
        event: String,
        data: Vec<String>,
        data_len: usize,
        done: bool,
    }
    let st = St {
        input: Box::pin(input),
        buf: LineBuffer::default(),
        event: String::new(),
        data: Vec::new(),
        data_len: 0,
        done: false,
    };
    futures_util::stream::unfold(st, |mut st| async move {
        loop {
            // Dispatch complete lines already buffered.
            while let Some(line) = st.buf.next_line() {
                let line = String::from_utf8_lossy(&line).into_owned();
                if line.is_empty() {
                    if st.data.is_empty() && st.event.is_empty() {
                        continue;
                    }
                    st.data_len = 0;
                    let ev = SseEvent {
                        event: std::mem::take(&mut st.event),
                        data: std::mem::take(&mut st.data).join("\n"),
                    };
                    return Some((Ok(ev), st));
                }
                if line.starts_with(':') {
                    continue;
                }
                let (field, value) = match line.split_once(':') {
                    Some((f, v)) => (f.to_string(), v.strip_prefix(' ').unwrap_or(v).to_string()),
                    None => (line.clone(), String::new()),
                };
                match field.as_str() {
                    "event" => st.event = value,
                    "data" => {
                        st.data_len += value.len() + 1;
                        st.data.push(value);
                    }
                    _ => {}
                }
                if st.data_len > MAX_LINE {
                    st.done = true;
                    st.buf.clear();
                    st.data.clear();
                    return Some((
                        Err(ProviderError::Protocol {
                            provider: String::new(),
                            message: "an SSE event is longer than 8 MiB".into(),
                            truncated: false,
                        }),
                        st,
                    ));
                }
            }
            if st.done {
                // A final event without its blank line still counts.
                if !st.data.is_empty() {
                    let ev = SseEvent {
                        event: std::mem::take(&mut st.event),
                        data: std::mem::take(&mut st.data).join("\n"),
                    };
                    return Some((Ok(ev), st));
                }
                return None;
            }
            if st.buf.len() > MAX_LINE {
                st.done = true;
                st.buf.clear();
                return Some((
                    Err(ProviderError::Protocol {
                        provider: String::new(),
                        message: "an SSE line is longer than 8 MiB".into(),
                        truncated: false,
                    }),
                    st,
                ));
            }
            match st.input.next().await {
                Some(Ok(chunk)) => st.buf.push(chunk.chunk()),
                Some(Err(e)) => {
                    st.done = true;
                    st.buf.clear();
                    st.data.clear();
                    return Some((Err(e), st));
                }
                None => {
                    st.done = true;
                    if !st.buf.is_empty() {
                        st.buf.push(b"\n");
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn parse(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let owned: Vec<Result<bytes::Bytes, ProviderError>> = chunks
            .iter()
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        events(futures_util::stream::iter(owned))
            .map(|r| r.unwrap())
            .collect()
            .await
    }

    /// A 1 MiB line arriving one byte at a time: every byte is examined once, not once per
    /// chunk (the quadratic search the fuzzer found made that take seconds).
    #[test]
    fn a_long_line_in_tiny_chunks_is_scanned_once() {
        let mut lb = LineBuffer::default();
        let n = 1 << 20;
        for _ in 0..n {
            lb.push(b"x");
            assert!(lb.next_line().is_none());
        }
        lb.push(b"\r\nnext");
        assert_eq!(lb.next_line().unwrap().len(), n);
        assert!(lb.next_line().is_none());
        assert!(
            lb.examined <= (n as u64) + 8,
            "examined {} bytes",
            lb.examined
        );
    }

    #[tokio::test]
    async fn an_event_over_the_cap_is_refused() {
        let line = format!("data: {}\n", "y".repeat(1 << 20));
        let owned: Vec<Result<bytes::Bytes, ProviderError>> = (0..9)
            .map(|_| Ok(bytes::Bytes::from(line.clone())))
            .collect();
        let out: Vec<_> = events(futures_util::stream::iter(owned)).collect().await;
        assert_eq!(out.len(), 1);
        match &out[0] {
            Err(ProviderError::Protocol { message, .. }) => {
                assert!(message.contains("event is longer than 8 MiB"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn splits_anywhere_and_joins_data_lines() {
        let whole = "event: a\r\ndata: {\"x\":\ndata: 1}\r\n\r\n: comment\n\ndata: é\n\ndata: last";
        let bytes = whole.as_bytes();
        let expect = vec![
            SseEvent {
                event: "a".into(),
                data: "{\"x\":\n1}".into(),
            },
            SseEvent {
                event: String::new(),
                data: "é".into(),
            },
            SseEvent {
                event: String::new(),
                data: "last".into(),
            },
        ];
        assert_eq!(parse(&[bytes]).await, expect);
        // One byte at a time, including inside the two-byte "é".
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(parse(&singles).await, expect);
    }
}
