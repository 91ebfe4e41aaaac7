//! Streamed response bodies: big answers (range query matrices, exports) are encoded a batch of
//! series at a time while hyper sends them (chunked transfer encoding), so neither the whole
//! encoded answer nor the already-sent series stay in memory.

use crate::promql::shares;
use axum::body::{Body, Bytes};
use std::collections::VecDeque;
use std::convert::Infallible;

/// Weight (points, say) of the items encoded in one batch. A batch big enough to be worth
/// it is split among the cores, each encoding its share into a chunk of its own: encoding
/// floats as text is most of the time of a large answer.
const BATCH_WEIGHT: usize = 100_000;

/// A body of `head`, then every item of `items` encoded by `encode` (given the item's
/// index), then `tail`. `weight` sizes the batches. Items are consumed (and dropped) as
/// their batch is encoded.
pub(super) fn body<T, F, W>(head: String, items: Vec<T>, encode: F, weight: W, tail: String) -> Body
where
    T: Send + 'static,
    F: Fn(&mut String, usize, T) + Send + Sync + 'static,
    W: Fn(&T) -> usize + Send + 'static,
{
    let chunks = Chunks {
        ready: VecDeque::from([Bytes::from(head)]),
        items: items.into_iter().enumerate(),
        encode,
        weight,
        tail: Some(tail),
    };
    Body::from_stream(futures::stream::iter(chunks.map(Ok::<_, Infallible>)))
}

/// The iterator of chunks behind [`body`].
struct Chunks<T, F, W> {
    /// Chunks encoded and not yet sent.
    ready: VecDeque<Bytes>,
    items: std::iter::Enumerate<std::vec::IntoIter<T>>,
    encode: F,
    weight: W,
    tail: Option<String>,
}

impl<T, F, W> Iterator for Chunks<T, F, W>
where
    T: Send,
    F: Fn(&mut String, usize, T) + Sync,
    W: Fn(&T) -> usize,
{
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(chunk) = self.ready.pop_front() {
                if !chunk.is_empty() {
                    return Some(chunk);
                }
                continue;
            }
            let mut batch = Vec::new();
            let mut weight = 0;
            while weight < BATCH_WEIGHT {
                let Some((i, item)) = self.items.next() else { break };
                weight += (self.weight)(&item).max(1);
                batch.push((i, item));
            }
            if batch.is_empty() {
                return self.tail.take().filter(|t| !t.is_empty()).map(Bytes::from);
            }
            // Below a full batch (the last one, or a small answer) one thread does.
            let per_thread = if weight < BATCH_WEIGHT { usize::MAX } else { 1 };
            let encode = &self.encode;
            let encoded = shares::map(shares::split(batch, per_thread), |share| {
                let mut out = String::new();
                for (i, item) in share {
                    encode(&mut out, i, item);
                }
                Bytes::from(out)
            });
            self.ready.extend(encoded);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks_of(items: Vec<String>) -> Vec<Bytes> {
        let chunks = Chunks {
            ready: VecDeque::from([Bytes::from("[")]),
            items: items.into_iter().enumerate(),
            encode: |out: &mut String, i: usize, s: String| {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&s);
            },
            weight: |s: &String| s.len() * 10,
            tail: Some("]".to_string()),
        };
        chunks.collect()
    }

    #[test]
    fn chunks_hold_head_items_and_tail_in_order() {
        let items: Vec<String> = (0..100_000u32).map(|i| i.to_string()).collect();
        let parts = chunks_of(items);
        assert!(parts.len() > 4, "a big answer is sent in several chunks");
        let all: Vec<u8> = parts.concat();
        let want =
            format!("[{}]", (0..100_000).map(|i| i.to_string()).collect::<Vec<_>>().join(","));
        assert_eq!(String::from_utf8(all).unwrap(), want);
    }

    #[test]
    fn empty_and_small_answers() {
        assert_eq!(chunks_of(Vec::new()).concat(), b"[]");
        assert_eq!(chunks_of(vec!["a".into(), "b".into()]).concat(), b"[a,b]");
    }
}
