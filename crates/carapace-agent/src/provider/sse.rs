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

/// Longest line accepted (a single JSON chunk); beyond it the stream is refused.
const MAX_LINE: usize = 8 << 20;

pub(crate) fn events<S>(input: S) -> impl Stream<Item = Result<SseEvent, ProviderError>> + Send
where
    S: Stream<Item = Result<bytes::Bytes, ProviderError>> + Send + 'static,
{
    struct St<S> {
        input: std::pin::Pin<Box<S>>,
        buf: BytesMut,
        event: String,
        data: Vec<String>,
        done: bool,
    }
    let st = St {
        input: Box::pin(input),
        buf: BytesMut::new(),
        event: String::new(),
        data: Vec::new(),
        done: false,
    };
    futures_util::stream::unfold(st, |mut st| async move {
        loop {
            // Dispatch complete lines already buffered.
            while let Some(pos) = st.buf.iter().position(|b| *b == b'\n') {
                let mut line = st.buf.split_to(pos + 1);
                line.truncate(pos);
                if line.last() == Some(&b'\r') {
                    line.truncate(pos - 1);
                }
                let line = String::from_utf8_lossy(&line).into_owned();
                if line.is_empty() {
                    if st.data.is_empty() && st.event.is_empty() {
                        continue;
                    }
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
                    "data" => st.data.push(value),
                    _ => {}
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
                Some(Ok(chunk)) => st.buf.extend_from_slice(chunk.chunk()),
                Some(Err(e)) => {
                    st.done = true;
                    st.buf.clear();
                    st.data.clear();
                    return Some((Err(e), st));
                }
                None => {
                    st.done = true;
                    if !st.buf.is_empty() {
                        st.buf.extend_from_slice(b"\n");
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
