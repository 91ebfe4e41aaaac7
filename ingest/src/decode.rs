//! remote_write 1.0 body → validated, normalised series.
//!
//! The body is a snappy block (not framed) holding a `prometheus.WriteRequest`. Every series is
//! checked before anything is written, so a request with one bad series is rejected whole and
//! stores nothing (senders do not retry a 400, and a half-stored request would be confusing).
//!
//! Decoding allocates nothing per label or per series: a hand-written protobuf reader walks the
//! decompressed buffer (`WriteRequest` → `TimeSeries` → `Label` / `Sample`) and borrows every
//! label as a `&str`; validation and sorting work on those borrows, and each kept series is
//! appended to a [`SeriesBatch`] (all label text of the request in one string, labels and
//! samples in flat vectors). No intermediate prost structs, no strings for dropped (HA
//! replica) or empty-valued labels. Per-label allocation is what dominates ingest cost
//! (GreptimeDB measured the same for its remote_write decoder).
//!
//! Behaviour is prost's, by construction: the fast reader accepts only what prost accepts, and
//! when it meets anything it does not handle (malformed input, but also legal rarities such as
//! group-encoded unknown fields) it hands the body to the prost decoder
//! ([`decode_write_request_prost`]), whose result — the exact prost error, usually — is returned.
//! Protobuf errors win over label errors, as with prost, which decodes the whole request first.

use basin_proto::batch::{BatchFull, SeriesBatch};
use basin_proto::labels::{self, LabelError, LabelLimits, LabelRef};
use basin_proto::remote;
use basin_proto::storage::{Label, Sample};
use prost::Message;
use thiserror::Error;

/// Why a remote_write body was rejected. All variants are the sender's fault (HTTP 400).
#[derive(Debug, Error)]
pub enum DecodeError {
    /// The body is not a valid snappy block.
    #[error("bad snappy-compressed body: {0}")]
    Snappy(#[from] snap::Error),
    /// The uncompressed body exceeds the limit.
    #[error("uncompressed body is {size} bytes, over the limit of {limit} (max_request_bytes)")]
    TooLarge {
        /// Uncompressed size the snappy header announces.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The body is not a valid `WriteRequest`.
    #[error("bad protobuf WriteRequest: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// A series has an invalid label set.
    #[error("series {index} ({series}): {error}")]
    Labels {
        /// Position of the series in the request.
        index: usize,
        /// The series as sent, rendered like Prometheus prints it.
        series: String,
        /// What is wrong.
        error: LabelError,
    },
    /// The request holds more label bytes, labels or samples than a batch can index.
    #[error("request too large to decode: {0}")]
    Batch(#[from] BatchFull),
}

/// Limits applied while decoding.
#[derive(Debug, Clone)]
pub struct DecodeLimits {
    /// Largest uncompressed body accepted.
    pub max_request_bytes: usize,
    /// Label count and length limits.
    pub labels: LabelLimits,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self { max_request_bytes: 64 << 20, labels: LabelLimits::default() }
    }
}

/// A decoded request.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Series with sorted, validated labels and at least one sample each.
    pub series: SeriesBatch,
    /// Total samples.
    pub samples: usize,
}

/// Decodes and validates a remote_write body. `drop_labels` (HA replica labels) are removed
/// from every series before validation.
pub fn decode_write_request(
    body: &[u8],
    limits: &DecodeLimits,
    drop_labels: &[String],
) -> Result<Decoded, DecodeError> {
    let raw = decompress(body, limits)?;
    match decode_fast(&raw, limits, drop_labels) {
        Ok(result) => result,
        // Malformed (or merely unusual) protobuf: let prost decide, and name the error.
        Err(Unhandled) => decode_raw_prost(&raw, limits, drop_labels),
    }
}

/// The reference decoder on prost's generated types: same contract as
/// [`decode_write_request`], slower (one `String` per label of every intermediate struct).
/// It decides every body the fast reader does not handle, and is the baseline in the
/// equivalence tests and in `benches/decode.rs`.
pub fn decode_write_request_prost(
    body: &[u8],
    limits: &DecodeLimits,
    drop_labels: &[String],
) -> Result<Decoded, DecodeError> {
    let raw = decompress(body, limits)?;
    decode_raw_prost(&raw, limits, drop_labels)
}

/// Checks the announced size against the limit, then decompresses the snappy block.
fn decompress(body: &[u8], limits: &DecodeLimits) -> Result<Vec<u8>, DecodeError> {
    let size = snap::raw::decompress_len(body)?;
    if size > limits.max_request_bytes {
        return Err(DecodeError::TooLarge { size, limit: limits.max_request_bytes });
    }
    Ok(snap::raw::Decoder::new().decompress_vec(body)?)
}

fn decode_raw_prost(
    raw: &[u8],
    limits: &DecodeLimits,
    drop_labels: &[String],
) -> Result<Decoded, DecodeError> {
    let req = remote::WriteRequest::decode(raw)?;
    let mut out = Decoded { series: SeriesBatch::with_capacity(req.timeseries.len()), samples: 0 };
    for (index, ts) in req.timeseries.into_iter().enumerate() {
        let mut labels: Vec<Label> = ts
            .labels
            .into_iter()
            .filter(|l| !drop_labels.contains(&l.name))
            .map(|l| Label { name: l.name, value: l.value })
            .collect();
        if let Err(error) = labels::normalize(&mut labels, &limits.labels) {
            return Err(DecodeError::Labels { index, series: labels::display(&labels), error });
        }
        if ts.samples.is_empty() {
            continue;
        }
        out.samples += ts.samples.len();
        let samples: Vec<Sample> = ts
            .samples
            .into_iter()
            .map(|s| Sample { timestamp_ms: s.timestamp, value: s.value })
            .collect();
        out.series.push(&labels, &samples)?;
    }
    Ok(out)
}

/// The fast reader met input it does not decide itself; prost will.
#[derive(Debug, PartialEq, Eq)]
struct Unhandled;

type Fast<T> = Result<T, Unhandled>;

/// Protobuf wire types (the low 3 bits of a field key).
mod wire {
    pub(super) const VARINT: u8 = 0;
    pub(super) const FIXED64: u8 = 1;
    pub(super) const LEN: u8 = 2;
    pub(super) const FIXED32: u8 = 5;
}

/// A cursor over protobuf bytes. Every read checks bounds; nothing panics on any input.
#[derive(Debug, Clone, Copy)]
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// A base-128 varint of at most 10 bytes whose 10th byte is 0 or 1 (prost's rule).
    #[inline(always)]
    fn varint(&mut self) -> Fast<u64> {
        // Most varints (keys, lengths) are one byte.
        if let Some((&byte, rest)) = self.buf.split_first()
            && byte < 0x80
        {
            self.buf = rest;
            return Ok(u64::from(byte));
        }
        let mut value = 0u64;
        for (i, &byte) in self.buf.iter().take(10).enumerate() {
            if i == 9 && byte > 1 {
                return Err(Unhandled);
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        Err(Unhandled)
    }

    /// A field key: (field number, wire type). Rejects what prost rejects: keys over
    /// `u32::MAX`, field number 0, wire types 6 and 7.
    #[inline(always)]
    fn key(&mut self) -> Fast<(u32, u8)> {
        let key = u32::try_from(self.varint()?).map_err(|_| Unhandled)?;
        let (field, wire_type) = (key >> 3, (key & 7) as u8);
        if field == 0 || wire_type > 5 {
            return Err(Unhandled);
        }
        Ok((field, wire_type))
    }

    /// `n` raw bytes.
    #[inline(always)]
    fn take(&mut self, n: usize) -> Fast<&'a [u8]> {
        if n > self.buf.len() {
            return Err(Unhandled);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// The payload of a length-delimited field.
    #[inline(always)]
    fn bytes(&mut self) -> Fast<&'a [u8]> {
        let len = usize::try_from(self.varint()?).map_err(|_| Unhandled)?;
        self.take(len)
    }

    /// A length-delimited field as a UTF-8 string.
    #[inline(always)]
    fn str(&mut self) -> Fast<&'a str> {
        std::str::from_utf8(self.bytes()?).map_err(|_| Unhandled)
    }

    #[inline]
    fn fixed64(&mut self) -> Fast<u64> {
        let bytes: [u8; 8] = self.take(8)?.try_into().map_err(|_| Unhandled)?;
        Ok(u64::from_le_bytes(bytes))
    }

    /// Skips an unknown field. Groups (wire types 3 and 4, deprecated and never sent by
    /// remote_write clients) are left to prost.
    fn skip(&mut self, wire_type: u8) -> Fast<()> {
        match wire_type {
            wire::VARINT => self.varint().map(drop),
            wire::FIXED64 => self.take(8).map(drop),
            wire::LEN => self.bytes().map(drop),
            wire::FIXED32 => self.take(4).map(drop),
            _ => Err(Unhandled),
        }
    }
}

/// Reusable per-request state of the fast decoder.
struct FastDecoder<'a, 'l> {
    limits: &'l DecodeLimits,
    drop_labels: &'l [String],
    /// The current series' `Label` fields, unparsed.
    fields: Vec<&'a [u8]>,
    /// Labels of the current series, borrowed from the buffer.
    labels: Vec<LabelRef<'a>>,
    /// The labels of the current series that are kept, then sorted.
    kept: Vec<LabelRef<'a>>,
    /// Samples of the current series.
    samples: Vec<Sample>,
    out: Decoded,
    /// The first label error; later series are then only checked for protobuf errors.
    label_error: Option<DecodeError>,
    /// `TimeSeries` in the request.
    series_total: usize,
    /// Size of the uncompressed request.
    raw_len: usize,
}

/// Decodes an uncompressed `WriteRequest`. The outer `Err` means "not decided here".
fn decode_fast(
    raw: &[u8],
    limits: &DecodeLimits,
    drop_labels: &[String],
) -> Fast<Result<Decoded, DecodeError>> {
    let series_total = count_series(raw)?;
    let mut dec = FastDecoder {
        limits,
        drop_labels,
        fields: Vec::with_capacity(16),
        labels: Vec::with_capacity(16),
        kept: Vec::with_capacity(16),
        samples: Vec::with_capacity(16),
        out: Decoded { series: SeriesBatch::with_capacity(series_total), samples: 0 },
        series_total,
        raw_len: raw.len(),
        label_error: None,
    };
    let mut r = Reader::new(raw);
    let mut index = 0;
    while !r.is_empty() {
        match r.key()? {
            (1, wire::LEN) => {
                dec.series(index, r.bytes()?)?;
                index += 1;
            }
            (3, wire::LEN) => check_metadata(r.bytes()?)?,
            (1 | 3, _) => return Err(Unhandled),
            (_, wire_type) => r.skip(wire_type)?,
        }
    }
    Ok(match dec.label_error {
        Some(error) => Err(error),
        None => Ok(dec.out),
    })
}

/// Counts the `timeseries` fields of a `WriteRequest`, to size the output once.
fn count_series(raw: &[u8]) -> Fast<usize> {
    let mut r = Reader::new(raw);
    let mut n = 0;
    while !r.is_empty() {
        let (field, wire_type) = r.key()?;
        n += usize::from(field == 1);
        r.skip(wire_type)?;
    }
    Ok(n)
}

impl<'a> FastDecoder<'a, '_> {
    /// Parses one `TimeSeries` and, while no series has failed validation, appends it.
    fn series(&mut self, index: usize, buf: &'a [u8]) -> Fast<()> {
        self.fields.clear();
        self.labels.clear();
        self.samples.clear();
        // The labels usually come first, one run of fields: checked as UTF-8 in one go,
        // their names and values are then sliced from it without checking each again.
        let (mut run_end, mut in_run) = (0, true);
        let mut r = Reader::new(buf);
        while !r.is_empty() {
            match r.key()? {
                (1, wire::LEN) => {
                    self.fields.push(r.bytes()?);
                    if in_run {
                        run_end = buf.len() - r.buf.len();
                    }
                }
                (2, wire::LEN) => {
                    in_run = false;
                    self.samples.push(sample(r.bytes()?)?);
                }
                (1 | 2, _) => return Err(Unhandled),
                (_, wire_type) => {
                    in_run = false;
                    r.skip(wire_type)?;
                }
            }
        }
        let text = std::str::from_utf8(&buf[..run_end]).ok();
        for &field in &self.fields {
            let at = field.as_ptr() as usize - buf.as_ptr() as usize;
            let l = match text.and_then(|t| t.get(at..at + field.len())) {
                Some(field) => label_of(field)?,
                None => label(field)?,
            };
            self.labels.push(l);
        }
        if self.label_error.is_none() {
            self.emit(index, text);
        }
        Ok(())
    }

    /// Validates the current series and appends it to the output (or records its error);
    /// `text` is the run of label fields its labels were sliced from, if they were.
    fn emit(&mut self, index: usize, text: Option<&str>) {
        self.kept.clear();
        let drop_labels = self.drop_labels;
        self.kept.extend(self.labels.iter().filter(|l| !drop_labels.iter().any(|d| d == l.name)));
        if let Err(error) = labels::normalize(&mut self.kept, &self.limits.labels) {
            let series = labels::display(&self.kept);
            self.label_error = Some(DecodeError::Labels { index, series, error });
            return;
        }
        if self.samples.is_empty() {
            return;
        }
        self.out.samples += self.samples.len();
        if self.out.series.len() == 1 {
            // The first series tells how large the rest are likely to be; the label text is
            // at most the request's size.
            // Capped by what the request can hold: a label takes 4 bytes or more of it, a
            // sample 2 or more.
            let rest = self.series_total.saturating_sub(1);
            let labels = self.kept.len().saturating_mul(rest).min(self.raw_len / 4);
            let samples = self.samples.len().saturating_mul(rest).min(self.raw_len / 2);
            self.out.series.reserve(self.raw_len, labels, samples);
        }
        let pushed = match text {
            Some(text) => self.out.series.push_in(text, &self.kept, &self.samples),
            None => self.out.series.push(&self.kept, &self.samples),
        };
        if let Err(full) = pushed {
            self.label_error = Some(full.into());
        }
    }
}

/// Parses a `Label`: name = 1, value = 2 (strings; the last occurrence wins, as in prost).
fn label(buf: &[u8]) -> Fast<LabelRef<'_>> {
    label_with(buf, |field| std::str::from_utf8(field).map_err(|_| Unhandled))
}

/// [`label`] of a `Label` known to be UTF-8 as a whole: name and value are sliced from it
/// (a slice not on character boundaries, possible only with unusual fields, is `Unhandled`).
fn label_of(msg: &str) -> Fast<LabelRef<'_>> {
    let base = msg.as_ptr() as usize;
    label_with(msg.as_bytes(), |field| {
        let at = field.as_ptr() as usize - base;
        msg.get(at..at + field.len()).ok_or(Unhandled)
    })
}

/// Parses a `Label`, turning its string fields into text with `text`.
fn label_with<'a>(buf: &'a [u8], text: impl Fn(&'a [u8]) -> Fast<&'a str>) -> Fast<LabelRef<'a>> {
    let (mut name, mut value) = ("", "");
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        match r.key()? {
            (1, wire::LEN) => name = text(r.bytes()?)?,
            (2, wire::LEN) => value = text(r.bytes()?)?,
            (1 | 2, _) => return Err(Unhandled),
            (_, wire_type) => r.skip(wire_type)?,
        }
    }
    Ok(LabelRef { name, value })
}

/// Parses a `Sample`: value = 1 (double), timestamp = 2 (int64 varint).
fn sample(buf: &[u8]) -> Fast<Sample> {
    let mut s = Sample { timestamp_ms: 0, value: 0.0 };
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        match r.key()? {
            (1, wire::FIXED64) => s.value = f64::from_bits(r.fixed64()?),
            // int64 on the wire is the two's complement bit pattern; the cast is the decoding.
            (2, wire::VARINT) => s.timestamp_ms = r.varint()? as i64,
            (1 | 2, _) => return Err(Unhandled),
            (_, wire_type) => r.skip(wire_type)?,
        }
    }
    Ok(s)
}

/// Checks a `MetricMetadata` the way prost would decode it (Basin does not store metadata):
/// type = 1 (enum, varint), metric_family_name = 2, help = 4, unit = 5 (strings).
fn check_metadata(buf: &[u8]) -> Fast<()> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        match r.key()? {
            (1, wire::VARINT) => r.varint().map(drop)?,
            (2 | 4 | 5, wire::LEN) => r.str().map(drop)?,
            (1 | 2 | 4 | 5, _) => return Err(Unhandled),
            (_, wire_type) => r.skip(wire_type)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn body(series: Vec<remote::TimeSeries>) -> Vec<u8> {
        let req = remote::WriteRequest { timeseries: series, metadata: vec![] };
        snap::raw::Encoder::new().compress_vec(&req.encode_to_vec()).unwrap()
    }

    fn ts(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> remote::TimeSeries {
        remote::TimeSeries {
            labels: labels
                .iter()
                .map(|(n, v)| remote::Label { name: (*n).into(), value: (*v).into() })
                .collect(),
            samples: samples
                .iter()
                .map(|&(t, v)| remote::Sample { timestamp: t, value: v })
                .collect(),
        }
    }

    #[test]
    fn decodes_sorts_and_drops_replica_label() {
        let b = body(vec![ts(
            &[("job", "a"), ("__name__", "up"), ("prometheus_replica", "r1")],
            &[(1000, 1.0), (2000, 2.0)],
        )]);
        let d = decode_write_request(&b, &DecodeLimits::default(), &["prometheus_replica".into()])
            .unwrap();
        assert_eq!(d.samples, 2);
        let names: Vec<_> = d.series.labels(0).map(|l| l.name).collect();
        assert_eq!(names, ["__name__", "job"]);
        assert_eq!(d.series.samples(0)[1].timestamp_ms, 2000);
    }

    #[test]
    fn rejects_bad_bodies_with_reasons() {
        let lim = DecodeLimits::default();
        assert!(matches!(
            decode_write_request(b"not snappy at all", &lim, &[]),
            Err(DecodeError::Snappy(_))
        ));
        let garbage = snap::raw::Encoder::new().compress_vec(&[0xff, 0xff, 0xff]).unwrap();
        assert!(matches!(decode_write_request(&garbage, &lim, &[]), Err(DecodeError::Protobuf(_))));
        let b = body(vec![
            ts(&[("__name__", "ok")], &[(1, 1.0)]),
            ts(&[("__name__", "bad-name")], &[(1, 1.0)]),
        ]);
        let err = decode_write_request(&b, &lim, &[]).unwrap_err();
        assert!(err.to_string().contains("series 1") && err.to_string().contains("bad-name"));
        let small = DecodeLimits { max_request_bytes: 4, ..lim };
        let err = decode_write_request(&b, &small, &[]).unwrap_err();
        assert!(err.to_string().contains("max_request_bytes"), "{err}");
    }

    /// Both decoders on the same body: identical series, or the same error message.
    fn assert_same(raw: &[u8], drop_labels: &[String]) {
        let b = snap::raw::Encoder::new().compress_vec(raw).unwrap();
        let lim = DecodeLimits::default();
        let fast = decode_write_request(&b, &lim, drop_labels);
        let slow = decode_write_request_prost(&b, &lim, drop_labels);
        match (fast, slow) {
            (Ok(f), Ok(s)) => {
                assert_eq!(f.samples, s.samples);
                assert_eq!(f.series.len(), s.series.len());
                assert_eq!(f.series.sample_count(), f.samples);
                for i in 0..f.series.len() {
                    assert!(f.series.labels(i).eq(s.series.labels(i)));
                    let (f, s) = (f.series.samples(i), s.series.samples(i));
                    assert_eq!(f.len(), s.len());
                    for (f, s) in f.iter().zip(s) {
                        assert_eq!(f.timestamp_ms, s.timestamp_ms);
                        assert_eq!(f.value.to_bits(), s.value.to_bits());
                    }
                }
            }
            (Err(f), Err(s)) => assert_eq!(f.to_string(), s.to_string()),
            (f, s) => panic!("fast {f:?} vs prost {s:?}"),
        }
        // The fast reader itself must never accept what prost rejects.
        if remote::WriteRequest::decode(raw).is_err() {
            assert!(decode_fast(raw, &lim, drop_labels).is_err(), "fast reader accepted junk");
        }
    }

    fn arb_label() -> impl Strategy<Value = remote::Label> {
        let names = prop_oneof![
            Just("__name__".to_string()),
            Just("job".to_string()),
            Just("replica".to_string()),
            "[a-z_]{0,6}",
            ".{0,4}",
        ];
        (names, prop_oneof!["[a-z_:]{0,8}", ".{0,6}"])
            .prop_map(|(name, value)| remote::Label { name, value })
    }

    fn arb_series() -> impl Strategy<Value = remote::TimeSeries> {
        let sample = (any::<i64>(), any::<f64>())
            .prop_map(|(timestamp, value)| remote::Sample { timestamp, value });
        (prop::collection::vec(arb_label(), 0..6), prop::collection::vec(sample, 0..4))
            .prop_map(|(labels, samples)| remote::TimeSeries { labels, samples })
    }

    fn arb_request() -> impl Strategy<Value = Vec<u8>> {
        let metadata =
            (0..9i32, ".{0,5}", ".{0,5}").prop_map(|(t, name, help)| remote::MetricMetadata {
                r#type: t,
                metric_family_name: name,
                help,
                unit: String::new(),
            });
        (prop::collection::vec(arb_series(), 0..5), prop::collection::vec(metadata, 0..2)).prop_map(
            |(timeseries, metadata)| remote::WriteRequest { timeseries, metadata }.encode_to_vec(),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn same_as_prost_on_valid_requests(raw in arb_request()) {
            assert_same(&raw, &[]);
            assert_same(&raw, &["replica".to_string()]);
        }

        #[test]
        fn same_as_prost_on_corrupted_requests(
            raw in arb_request(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut raw = raw;
            if raw.is_empty() {
                return Ok(());
            }
            for (at, byte) in edits {
                let i = at.index(raw.len());
                raw[i] = byte;
            }
            assert_same(&raw, &[]);
            raw.truncate(cut.index(raw.len()));
            assert_same(&raw, &[]);
        }

        #[test]
        fn same_as_prost_on_random_bytes(raw in prop::collection::vec(any::<u8>(), 0..64)) {
            assert_same(&raw, &[]);
        }
    }

    /// Appends a field key.
    fn key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
        varint(out, u64::from(field << 3 | u32::from(wire_type)));
    }

    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn len_field(out: &mut Vec<u8>, field: u32, payload: &[u8]) {
        key(out, field, wire::LEN);
        varint(out, payload.len() as u64);
        out.extend_from_slice(payload);
    }

    /// The label run checked as UTF-8 in one go: multi-byte values, labels after
    /// the samples (outside the run), and a value whose last character is completed only by
    /// the key of an unknown field after it (valid as a run, invalid as a string) are all
    /// decided as prost decides them.
    #[test]
    fn label_runs_decode_as_prost_does() {
        let label = |name: &[u8], value: &[u8], tail: &[u8]| {
            let mut l = Vec::new();
            len_field(&mut l, 1, name);
            len_field(&mut l, 2, value);
            l.extend_from_slice(tail);
            l
        };
        let mut sample = Vec::new();
        key(&mut sample, 2, wire::VARINT);
        varint(&mut sample, 1_700_000_000_000);
        let series = |labels: &[Vec<u8>], samples_first: bool| {
            let mut ts = Vec::new();
            if samples_first {
                len_field(&mut ts, 2, &sample);
            }
            labels.iter().for_each(|l| len_field(&mut ts, 1, l));
            if !samples_first {
                len_field(&mut ts, 2, &sample);
            }
            let mut req = Vec::new();
            len_field(&mut req, 1, &ts);
            req
        };
        let name = label(b"__name__", b"temperature", b"");
        let zone = label(b"zone", "東京 µs".as_bytes(), b"");
        // Field 16, wire type 0: its key's first byte, 0x80, continues the 0xe2 0x82 before it.
        let broken = label(b"x", &[0xe2, 0x82], &[0x80, 0x01, 0x00]);
        for req in [
            series(&[name.clone(), zone.clone()], false),
            series(&[name.clone(), zone.clone()], true),
            series(&[name.clone(), broken], false),
        ] {
            assert_same(&req, &[]);
        }
        let ok = decode_fast(&series(&[name, zone], false), &DecodeLimits::default(), &[]);
        let decoded = ok.expect("handled").expect("valid");
        let labels: Vec<(String, String)> =
            decoded.series.labels(0).map(|l| (l.name.to_string(), l.value.to_string())).collect();
        assert_eq!(labels[0], ("__name__".into(), "temperature".into()));
        assert_eq!(labels[1], ("zone".into(), "東京 µs".into()));
    }

    #[test]
    fn skips_unknown_fields_of_every_wire_type() {
        let mut lbl = Vec::new();
        len_field(&mut lbl, 1, b"__name__");
        key(&mut lbl, 7, wire::VARINT);
        varint(&mut lbl, u64::MAX);
        len_field(&mut lbl, 2, b"up");
        key(&mut lbl, 8, wire::FIXED32);
        lbl.extend_from_slice(&[1, 2, 3, 4]);
        let mut smp = Vec::new();
        key(&mut smp, 9, wire::FIXED64);
        smp.extend_from_slice(&[0; 8]);
        key(&mut smp, 1, wire::FIXED64);
        smp.extend_from_slice(&2.5f64.to_le_bytes());
        key(&mut smp, 2, wire::VARINT);
        varint(&mut smp, (-5i64) as u64);
        let mut series = Vec::new();
        len_field(&mut series, 1, &lbl);
        len_field(&mut series, 5, b"unknown bytes");
        len_field(&mut series, 2, &smp);
        let mut req = Vec::new();
        len_field(&mut req, 4, b"unknown");
        len_field(&mut req, 1, &series);
        let d = decode_fast(&req, &DecodeLimits::default(), &[]).unwrap().unwrap();
        assert_eq!(d.samples, 1);
        assert_eq!(d.series.labels(0).next().map(|l| l.value), Some("up"));
        assert_eq!(d.series.samples(0)[0].timestamp_ms, -5);
        assert_eq!(d.series.samples(0)[0].value, 2.5);
        assert_same(&req, &[]);
    }

    #[test]
    fn malformed_inputs_are_protobuf_errors() {
        let mut valid = Vec::new();
        let mut lbl = Vec::new();
        len_field(&mut lbl, 1, b"__name__");
        len_field(&mut lbl, 2, b"up");
        let mut series = Vec::new();
        len_field(&mut series, 1, &lbl);
        len_field(&mut valid, 1, &series);

        let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
        for cut in 1..valid.len() {
            cases.push(("truncated", valid[..cut].to_vec()));
        }
        cases.push(("11-byte varint", [0x08].into_iter().chain([0xff; 10]).collect()));
        cases.push((
            "10th varint byte over 1",
            [0x08].into_iter().chain([0xff; 9]).chain([2]).collect(),
        ));
        cases.push(("field number 0", vec![0x02, 0x00]));
        cases.push(("wire type 7", vec![0x0f]));
        cases.push(("timeseries as varint", vec![0x08, 0x01]));
        cases.push(("length past the end", vec![0x0a, 0x05, 0x00]));
        let mut bad_utf8 = Vec::new();
        let mut l = Vec::new();
        len_field(&mut l, 1, &[0xc3, 0x28]);
        let mut s = Vec::new();
        len_field(&mut s, 1, &l);
        len_field(&mut bad_utf8, 1, &s);
        cases.push(("invalid UTF-8 label", bad_utf8));
        let mut bad_sample = Vec::new();
        let mut s = Vec::new();
        len_field(&mut s, 2, &[0x08, 0x01]); // value as a varint
        len_field(&mut bad_sample, 1, &s);
        cases.push(("sample value with wire type 0", bad_sample));
        cases.push(("unterminated group", vec![0x1b]));

        let lim = DecodeLimits::default();
        for (what, raw) in cases {
            assert_eq!(decode_fast(&raw, &lim, &[]).map(drop), Err(Unhandled), "{what}");
            let b = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
            let err = decode_write_request(&b, &lim, &[]).unwrap_err();
            assert!(matches!(err, DecodeError::Protobuf(_)), "{what}: {err}");
            assert_same(&raw, &[]);
        }
    }

    #[test]
    fn protobuf_errors_win_over_label_errors() {
        let mut raw = body_raw(vec![ts(&[("__name__", "bad-name")], &[(1, 1.0)])]);
        raw.extend_from_slice(&[0x0a, 0x05]); // a truncated second series
        let b = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
        let err = decode_write_request(&b, &DecodeLimits::default(), &[]).unwrap_err();
        assert!(matches!(err, DecodeError::Protobuf(_)), "{err}");
    }

    fn body_raw(series: Vec<remote::TimeSeries>) -> Vec<u8> {
        remote::WriteRequest { timeseries: series, metadata: vec![] }.encode_to_vec()
    }
}
