//! Streamed response bodies: big answers (range query matrices, exports) are encoded a batch of
//! series at a time while hyper sends them (chunked transfer encoding), so neither the whole
//! encoded answer nor the already-sent series stay in memory.

use axum::body::{Body, Bytes};
use std::convert::Infallible;

/// Bytes encoded before a chunk is handed to hyper.
const CHUNK_BYTES: usize = 256 * 1024;

/// A body of `head`, then every item of `items` encoded by `encode`, then `tail`. Items are
/// consumed (and dropped) as their chunk is encoded.
pub(super) fn body<I, F>(head: String, items: I, encode: F, tail: String) -> Body
where
    I: Iterator + Send + 'static,
    F: FnMut(&mut String, I::Item) + Send + 'static,
{
    let chunks = Chunks { head: Some(head), items, encode, tail: Some(tail) };
    Body::from_stream(futures::stream::iter(chunks.map(Ok::<_, Infallible>)))
}

/// The iterator of chunks behind [`body`].
struct Chunks<I, F> {
    head: Option<String>,
    items: I,
    encode: F,
    tail: Option<String>,
}

impl<I, F> Iterator for Chunks<I, F>
where
    I: Iterator,
    F: FnMut(&mut String, I::Item),
{
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        let mut buf = self.head.take().unwrap_or_default();
        buf.reserve(CHUNK_BYTES + CHUNK_BYTES / 4);
        while buf.len() < CHUNK_BYTES {
            match self.items.next() {
                Some(item) => (self.encode)(&mut buf, item),
                None => {
                    buf.extend(self.tail.take());
                    break;
                }
            }
        }
        (!buf.is_empty()).then(|| Bytes::from(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_hold_head_items_and_tail_in_order() {
        let items = (0..100_000u32).map(|i| i.to_string());
        let chunks = Chunks {
            head: Some("[".to_string()),
            items: items.enumerate(),
            encode: |out: &mut String, (i, s): (usize, String)| {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&s);
            },
            tail: Some("]".to_string()),
        };
        let parts: Vec<Bytes> = chunks.collect();
        assert!(parts.len() > 1, "a big answer is sent in several chunks");
        let all: Vec<u8> = parts.concat();
        let want =
            format!("[{}]", (0..100_000).map(|i| i.to_string()).collect::<Vec<_>>().join(","));
        assert_eq!(String::from_utf8(all).unwrap(), want);
    }
}
