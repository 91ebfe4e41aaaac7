//! The chunk codec: a time-ordered run of samples of one series, compressed.
//!
//! Layout (varints are LEB128, signed ones zigzag-encoded):
//!
//! ```text
//! version (1 byte) | value mode (1 byte) [| k (1 byte), decimal mode] | count
//!   | timestamps (integer sequence) | values (integer sequence, or XOR)
//! ```
//!
//! An **integer sequence** is its first element (varint), then one of four encodings of
//! the rest, whichever is smallest for this chunk (a tag byte says which):
//! - **packed deltas**, **packed delta-of-deltas** or **packed linear** (distances from the
//!   line through the first and last element, whose slope is stored first): frame of
//!   reference plus bit packing. The residuals are stored as their minimum (varint), their
//!   greatest common divisor `g` (varint) and a bit width `w`, then every residual as
//!   `(r - min) / g` in exactly `w` bits. Regular scrapes with 0–2 ms of jitter cost 2 bits
//!   per timestamp (0 when perfectly regular); a noisy counter costs the bits of its
//!   noise; gauges moving in pages of 4096 bytes lose the 12 bits the divisor takes out.
//! - **varint delta-of-deltas**, one varint each: the fallback when one outlier (a counter
//!   reset) would widen every packed residual.
//!
//! Values are an integer sequence when every value is an integer (**integer mode**: counters,
//! integer gauges) or an integer over `10^k`, `k ≤ 6` (**decimal mode**: 23.4, 0.25), both
//! bit-exactly. Otherwise (**XOR mode**) each value's bits are XORed with the previous one's;
//! a control byte holds the count of leading zero bytes and of meaningful bytes, which follow
//! (a repeated value costs one byte). RocksDB's zstd on the bottom level takes what is left.
//!
//! Values round-trip bit-exactly: NaN payloads (the staleness marker), -0.0 and ±Inf.
//! Version 1 chunks (varint delta-of-deltas only) are still read.

mod packing;

use crate::series::{get_uvarint, put_uvarint};
use basin_proto::storage::Sample;
use packing::{Packing, uvarint_len};
use thiserror::Error;

const VERSION: u8 = 2;
/// The first layout: integer sequences are always varint delta-of-deltas, without a tag.
const VERSION_1: u8 = 1;
/// Most samples a chunk may hold (far above any `samples_per_chunk` in use).
pub const MAX_SAMPLES: u64 = 1 << 20;
/// Residual kinds, the low two bits of a sequence's tag (its next two bits say how the
/// residuals are packed, see [`packing`]); 0 alone is the varint fallback.
const SEQ_VARINT_DODS: u8 = 0;
const SEQ_PACKED_DELTAS: u8 = 1;
const SEQ_PACKED_DODS: u8 = 2;
const SEQ_PACKED_LINEAR: u8 = 3;
const MODE_INT: u8 = 1;
const MODE_XOR: u8 = 2;
/// Decimal mode: values are integers divided by `10^k`, `k` in `1..=MAX_DECIMALS`.
const MODE_DECIMAL: u8 = 3;
const MAX_DECIMALS: usize = 6;
const POW10: [f64; MAX_DECIMALS + 1] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6];

/// Why a chunk could not be decoded.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum CodecError {
    /// The chunk ends early.
    #[error("chunk truncated while reading {0}")]
    Truncated(&'static str),
    /// Unknown version or value mode byte.
    #[error("unknown chunk {what} {value}")]
    Unknown {
        /// `version` or `value mode`.
        what: &'static str,
        /// The byte found.
        value: u8,
    },
    /// Bytes left after the last sample.
    #[error("{0} trailing bytes after the last sample")]
    Trailing(usize),
    /// An XOR control byte that describes no bytes or more than 8.
    #[error("bad XOR control byte {0:#04x}")]
    BadControl(u8),
}

/// Maps signed to unsigned so small magnitudes of either sign stay small varints.
pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// The inverse of [`zigzag`].
pub(crate) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// The integer a value is, when it converts to `i64` and back bit-exactly.
fn as_int(v: f64) -> Option<i64> {
    let i = v as i64;
    ((i as f64).to_bits() == v.to_bits()).then_some(i)
}

/// The integer `i` with `i / 10^k == v` bit-exactly, if any (decimal gauges: 23.4, 0.25).
fn as_decimal(v: f64, k: usize) -> Option<i64> {
    let scaled = v * POW10[k];
    if !scaled.is_finite() || scaled.abs() >= (1u64 << 53) as f64 {
        return None;
    }
    let i = scaled.round() as i64;
    ((i as f64 / POW10[k]).to_bits() == v.to_bits()).then_some(i)
}

/// Integer form of all values: `(mode, k, ints)` for integer or decimal mode.
fn integer_form(samples: &[Sample]) -> Option<(u8, usize, Vec<i64>)> {
    if let Some(ints) = samples.iter().map(|s| as_int(s.value)).collect::<Option<Vec<_>>>() {
        return Some((MODE_INT, 0, ints));
    }
    (1..=MAX_DECIMALS).find_map(|k| {
        let ints = samples.iter().map(|s| as_decimal(s.value, k)).collect::<Option<Vec<_>>>()?;
        Some((MODE_DECIMAL, k, ints))
    })
}

/// Encodes a time-ordered run of samples (timestamps unique and increasing).
pub fn encode(samples: &[Sample]) -> Vec<u8> {
    let mut b = Vec::with_capacity(8 + samples.len() * 3);
    b.push(VERSION);
    let ints = integer_form(samples);
    match &ints {
        Some((mode, k, _)) => {
            b.push(*mode);
            if *mode == MODE_DECIMAL {
                b.push(*k as u8);
            }
        }
        None => b.push(MODE_XOR),
    }
    put_uvarint(&mut b, samples.len() as u64);
    let Some(first) = samples.first() else { return b };
    let ts: Vec<i64> = samples.iter().map(|s| s.timestamp_ms).collect();
    debug_assert_eq!(ts.first(), Some(&first.timestamp_ms));
    put_sequence(&mut b, &ts);
    match ints {
        Some((_, _, ints)) => put_sequence(&mut b, &ints),
        None => {
            let mut prev = 0u64;
            for s in samples {
                let bits = s.value.to_bits();
                put_xor(&mut b, bits ^ prev);
                prev = bits;
            }
        }
    }
    b
}

/// Writes a non-empty integer sequence: the first element, then the smallest of the three
/// encodings of the rest (see the module docs).
fn put_sequence(b: &mut Vec<u8>, xs: &[i64]) {
    put_uvarint(b, zigzag(xs[0]));
    let deltas: Vec<i64> = xs.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
    if deltas.is_empty() {
        return;
    }
    let dods: Vec<i64> = std::iter::once(deltas[0])
        .chain(deltas.windows(2).map(|w| w[1].wrapping_sub(w[0])))
        .collect();
    // Distances from the line through the first and last element (wrapping arithmetic,
    // like every other residual here, so any i64 sequence round-trips).
    let steps = (xs.len() - 1) as i128;
    let step = ((i128::from(xs[xs.len() - 1]) - i128::from(xs[0])) / steps) as i64;
    let linear: Vec<i64> = (1..xs.len())
        .map(|i| xs[i].wrapping_sub(xs[0]).wrapping_sub(step.wrapping_mul(i as i64)))
        .collect();
    let candidates = [
        (SEQ_PACKED_DELTAS, None, deltas.as_slice()),
        (SEQ_PACKED_DODS, None, dods.as_slice()),
        (SEQ_PACKED_LINEAR, Some(step), linear.as_slice()),
    ];
    let best = candidates
        .into_iter()
        .map(|(kind, step, residuals)| {
            let (packing, bytes) = Packing::best(residuals);
            (kind, step, residuals, packing, bytes + step.map_or(0, |s| uvarint_len(zigzag(s))))
        })
        .min_by_key(|c| c.4);
    let varint_bytes: usize = dods.iter().map(|&d| uvarint_len(zigzag(d))).sum();
    match best {
        Some((kind, step, residuals, packing, bytes)) if bytes <= varint_bytes => {
            b.push(kind | (packing.code() << 2));
            if let Some(step) = step {
                put_uvarint(b, zigzag(step));
            }
            packing.write(residuals, b);
        }
        _ => {
            b.push(SEQ_VARINT_DODS);
            put_dods(b, xs.iter().copied());
        }
    }
}

/// Writes the delta-of-deltas of a sequence after its first element.
fn put_dods(b: &mut Vec<u8>, mut it: impl Iterator<Item = i64>) {
    let Some(mut prev) = it.next() else { return };
    let mut prev_delta = 0i64;
    for v in it {
        let delta = v.wrapping_sub(prev);
        put_uvarint(b, zigzag(delta.wrapping_sub(prev_delta)));
        prev_delta = delta;
        prev = v;
    }
}

fn put_xor(b: &mut Vec<u8>, x: u64) {
    if x == 0 {
        b.push(0);
        return;
    }
    // Control byte: leading zero bytes (high nibble) and meaningful bytes (low nibble,
    // 1..=8), so a non-zero XOR never encodes as 0.
    let lead = (x.leading_zeros() / 8) as usize;
    let len = 8 - lead - (x.trailing_zeros() / 8) as usize;
    b.push(((lead as u8) << 4) | len as u8);
    b.extend_from_slice(&x.to_be_bytes()[lead..lead + len]);
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn uvarint(&mut self, what: &'static str) -> Result<u64, CodecError> {
        get_uvarint(self.b, &mut self.pos).ok_or(CodecError::Truncated(what))
    }

    fn byte(&mut self, what: &'static str) -> Result<u8, CodecError> {
        let v = *self.b.get(self.pos).ok_or(CodecError::Truncated(what))?;
        self.pos += 1;
        Ok(v)
    }

    /// Reads an integer sequence of `n` elements (tagged in version 2, varint
    /// delta-of-deltas in version 1) into `out` via `set`; `residuals` is scratch space.
    fn sequence(
        &mut self,
        version: u8,
        n: usize,
        what: &'static str,
        residuals: &mut Vec<i64>,
        mut set: impl FnMut(usize, i64),
    ) -> Result<(), CodecError> {
        let mut v = unzigzag(self.uvarint(what)?);
        set(0, v);
        if n == 1 {
            return Ok(());
        }
        let tag = if version == VERSION_1 { SEQ_VARINT_DODS } else { self.byte(what)? };
        match tag {
            SEQ_VARINT_DODS => {
                let mut delta = 0i64;
                for i in 1..n {
                    delta = delta.wrapping_add(unzigzag(self.uvarint(what)?));
                    v = v.wrapping_add(delta);
                    set(i, v);
                }
            }
            tag => {
                let kind = tag & 0b11;
                let step =
                    if kind == SEQ_PACKED_LINEAR { unzigzag(self.uvarint(what)?) } else { 0 };
                packing::read(tag >> 2, self.b, &mut self.pos, n - 1, what, residuals)?;
                let first = v;
                let mut delta = 0i64;
                for (i, &r) in (1..n).zip(residuals.iter()) {
                    v = match kind {
                        SEQ_PACKED_DELTAS => v.wrapping_add(r),
                        SEQ_PACKED_DODS => {
                            delta = delta.wrapping_add(r);
                            v.wrapping_add(delta)
                        }
                        SEQ_PACKED_LINEAR => {
                            first.wrapping_add(step.wrapping_mul(i as i64)).wrapping_add(r)
                        }
                        _ => {
                            return Err(CodecError::Unknown {
                                what: "sequence encoding",
                                value: tag,
                            });
                        }
                    };
                    set(i, v);
                }
            }
        }
        Ok(())
    }
}

/// Decodes a chunk.
pub fn decode(b: &[u8]) -> Result<Vec<Sample>, CodecError> {
    let mut out = Vec::new();
    Decoder::default().decode_into(b, &mut out)?;
    Ok(out)
}

/// Decodes chunks with scratch space kept from one chunk to the next: a chunk's timestamps
/// and values are decoded into columns that stay in cache, then written out as samples in a
/// single pass. Writing each column straight into the output took a zero-filling pass and
/// two read-modify-write passes over memory that a large select has never touched, and two
/// allocations per chunk.
#[derive(Debug, Default)]
pub struct Decoder {
    times: Vec<i64>,
    values: Vec<f64>,
    residuals: Vec<i64>,
}

impl Decoder {
    /// Decodes chunk `b`, appending its samples to `out` (which is left as it was on error).
    pub fn decode_into(&mut self, b: &[u8], out: &mut Vec<Sample>) -> Result<(), CodecError> {
        self.columns(b)?;
        let samples = self.times.iter().zip(&self.values);
        out.extend(samples.map(|(&timestamp_ms, &value)| Sample { timestamp_ms, value }));
        Ok(())
    }

    /// Decodes chunk `b` into `self.times` and `self.values`.
    fn columns(&mut self, b: &[u8]) -> Result<(), CodecError> {
        let mut r = Reader { b, pos: 0 };
        let version = r.byte("version")?;
        if version != VERSION && version != VERSION_1 {
            return Err(CodecError::Unknown { what: "version", value: version });
        }
        let mode = r.byte("value mode")?;
        let decimals = match mode {
            MODE_INT | MODE_XOR => 0,
            MODE_DECIMAL => {
                let k = r.byte("decimals")?;
                if k == 0 || k as usize > MAX_DECIMALS {
                    return Err(CodecError::Unknown { what: "decimal exponent", value: k });
                }
                k as usize
            }
            _ => return Err(CodecError::Unknown { what: "value mode", value: mode }),
        };
        let n = r.uvarint("count")?;
        // A corrupt count must fail, not allocate: XOR values take a byte each, and packed
        // sequences of any length fit in a chunk only up to the cap.
        if n > MAX_SAMPLES || (mode == MODE_XOR && n > b.len() as u64) {
            return Err(CodecError::Truncated("samples"));
        }
        let n = n as usize;
        let Decoder { times, values, residuals } = self;
        times.clear();
        times.resize(n, 0);
        values.clear();
        values.resize(n, 0.0);
        if n == 0 {
            return finish(&r);
        }
        r.sequence(version, n, "timestamps", residuals, |i, t| times[i] = t)?;
        if mode == MODE_INT {
            r.sequence(version, n, "values", residuals, |i, v| values[i] = v as f64)?;
        } else if mode == MODE_DECIMAL {
            let scale = POW10[decimals];
            r.sequence(version, n, "values", residuals, |i, v| values[i] = v as f64 / scale)?;
        } else {
            let mut prev = 0u64;
            for value in values.iter_mut() {
                let ctl = r.byte("values")?;
                let x = if ctl == 0 {
                    0
                } else {
                    let (lead, len) = ((ctl >> 4) as usize, (ctl & 0xf) as usize);
                    if len == 0 || lead + len > 8 {
                        return Err(CodecError::BadControl(ctl));
                    }
                    let bytes = b.get(r.pos..r.pos + len).ok_or(CodecError::Truncated("values"))?;
                    r.pos += len;
                    let mut full = [0u8; 8];
                    full[lead..lead + len].copy_from_slice(bytes);
                    u64::from_be_bytes(full)
                };
                prev ^= x;
                *value = f64::from_bits(prev);
            }
        }
        finish(&r)
    }
}

fn finish(r: &Reader<'_>) -> Result<(), CodecError> {
    if r.pos != r.b.len() {
        return Err(CodecError::Trailing(r.b.len() - r.pos));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(t: i64, v: f64) -> Sample {
        Sample { timestamp_ms: t, value: v }
    }

    fn bits(v: &[Sample]) -> Vec<(i64, u64)> {
        v.iter().map(|s| (s.timestamp_ms, s.value.to_bits())).collect()
    }

    #[test]
    fn special_values_round_trip_bit_exact() {
        let stale = f64::from_bits(basin_proto::STALE_NAN_BITS);
        let v = vec![
            s(i64::MIN, stale),
            s(-5, -0.0),
            s(0, f64::INFINITY),
            s(1, f64::NEG_INFINITY),
            s(2, f64::NAN),
            s(3, f64::MIN_POSITIVE),
            s(i64::MAX, 1.5),
        ];
        assert_eq!(bits(&decode(&encode(&v)).unwrap()), bits(&v));
        assert_eq!(decode(&encode(&[])).unwrap(), vec![]);
    }

    #[test]
    fn a_decoder_reused_across_chunks_appends_each_and_keeps_output_on_error() {
        let mut d = Decoder::default();
        let long: Vec<_> = (0..300).map(|i| s(i * 15_000, f64::from(i as u32) * 0.37)).collect();
        let short = vec![s(5, 1.0), s(6, 2.0)];
        let ints: Vec<_> = (0..50).map(|i| s(1_000 + i, (i * i) as f64)).collect();
        let mut out = Vec::new();
        for chunk in [&long, &short, &ints] {
            d.decode_into(&encode(chunk), &mut out).unwrap();
        }
        let want: Vec<_> = long.iter().chain(&short).chain(&ints).copied().collect();
        assert_eq!(bits(&out), bits(&want));
        let enc = encode(&long);
        assert!(d.decode_into(&enc[..enc.len() - 3], &mut out).is_err());
        assert_eq!(bits(&out), bits(&want), "a failed decode appends nothing");
        out.clear();
        d.decode_into(&encode(&short), &mut out).unwrap();
        assert_eq!(bits(&out), bits(&short));
    }

    #[test]
    fn counters_take_about_two_bytes_per_sample() {
        let v: Vec<_> =
            (0..120).map(|i| s(1_700_000_000_000 + i * 15_000, (i * 7) as f64)).collect();
        let enc = encode(&v);
        assert!(enc.len() < 120 * 2 + 16, "{} bytes", enc.len());
        assert_eq!(decode(&enc).unwrap(), v);
    }

    #[test]
    fn corrupt_chunks_are_errors() {
        let enc = encode(&[s(1, 0.5), s(2, 0.25)]);
        for cut in 0..enc.len() {
            assert!(decode(&enc[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = enc.clone();
        extra.push(0);
        assert_eq!(decode(&extra), Err(CodecError::Trailing(1)));
        assert!(matches!(decode(&[9, 1, 0]), Err(CodecError::Unknown { .. })));
        assert!(decode(&[VERSION, MODE_XOR, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
    }

    #[test]
    fn jittered_scrapes_and_noisy_counters_pack_into_few_bits() {
        // 15 s scrapes with 0–2 ms jitter; a counter growing 150 ± 40 per scrape.
        let mut value = 1_000_000i64;
        let v: Vec<_> = (0..120i64)
            .map(|i| {
                value += 150 + (i * 37 % 81) - 40;
                s(1_700_000_000_000 + i * 15_000 + (i * 7 % 3), value as f64)
            })
            .collect();
        let enc = encode(&v);
        // Timestamps: deltas within 4 ms of each other (3 bits); values: 81 apart (7 bits).
        assert!(enc.len() <= 16 + (119 * (3 + 7)) / 8 + 8, "{} bytes", enc.len());
        assert_eq!(bits(&decode(&enc).unwrap()), bits(&v));
    }

    #[test]
    fn regular_constant_series_cost_a_header_only() {
        let v: Vec<_> = (0..120).map(|i| s(i * 15_000, 1.0)).collect();
        let enc = encode(&v);
        assert!(enc.len() < 16, "{} bytes", enc.len());
        assert_eq!(bits(&decode(&enc).unwrap()), bits(&v));
    }

    #[test]
    fn common_divisor_is_factored_out() {
        // Memory gauges move in whole pages.
        let v: Vec<_> =
            (0..120).map(|i| s(i * 15_000, (1_000_000 + (i * 13 % 17)) as f64 * 4096.0)).collect();
        let enc = encode(&v);
        assert!(enc.len() < 16 + 119 * 5 / 8 + 8, "{} bytes", enc.len());
        assert_eq!(bits(&decode(&enc).unwrap()), bits(&v));
    }

    #[test]
    fn a_counter_reset_does_not_widen_the_chunk_past_varints() {
        let v: Vec<_> = (0..120)
            .map(|i| s(i * 15_000, if i < 60 { 1e12 + i as f64 } else { i as f64 }))
            .collect();
        let enc = encode(&v);
        // Varint delta-of-deltas: about a byte per sample, plus the reset's two big ones.
        assert!(enc.len() < 120 + 40, "{} bytes", enc.len());
        assert_eq!(bits(&decode(&enc).unwrap()), bits(&v));
    }

    #[test]
    fn version_1_chunks_still_decode() {
        // Version 1, integer mode, 3 samples: ts 1000, 2000, 3000; values 5, 6, 8.
        let v1 = [1, MODE_INT, 3, 0xd0, 0x0f, 0xd0, 0x0f, 0, 10, 2, 2];
        let got: Vec<_> = decode(&v1).unwrap().iter().map(|s| (s.timestamp_ms, s.value)).collect();
        assert_eq!(got, vec![(1000, 5.0), (2000, 6.0), (3000, 8.0)]);
    }

    #[test]
    fn decimal_gauges_use_integer_encoding() {
        let v: Vec<_> = (0..120).map(|i| s(i * 15_000, 20.0 + (i % 7) as f64 * 0.1)).collect();
        let enc = encode(&v);
        assert_eq!(enc[1], MODE_DECIMAL);
        assert!(enc.len() < 120 * 3, "{} bytes", enc.len());
        assert_eq!(bits(&decode(&enc).unwrap()), bits(&v));
        assert_eq!(as_decimal(0.1 + 0.2, 1), None, "0.30000000000000004 is not 0.3");
    }

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            (-100_000i64..100_000, 1usize..=MAX_DECIMALS).prop_map(|(i, k)| i as f64 / POW10[k]),
            any::<f64>(),
            any::<u64>().prop_map(f64::from_bits),
            (-1000i64..1000).prop_map(|i| i as f64),
            Just(f64::from_bits(basin_proto::STALE_NAN_BITS)),
            Just(-0.0),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(mut ts in proptest::collection::vec(any::<i64>(), 0..200),
                      vals in proptest::collection::vec(value(), 200),
                      ints in any::<bool>()) {
            ts.sort_unstable();
            ts.dedup();
            let v: Vec<Sample> = ts.iter().zip(&vals).map(|(&t, &x)| {
                s(t, if ints { x.round() } else { x })
            }).collect();
            prop_assert_eq!(bits(&decode(&encode(&v)).unwrap()), bits(&v));
        }

        #[test]
        fn regular_series_round_trip(start in any::<i64>(), step in 1i64..100_000, n in 0usize..300,
                                     jitter in proptest::collection::vec(-50i64..50, 300)) {
            let v: Vec<Sample> = (0..n).map(|i| s(start.wrapping_add(step.wrapping_mul(i as i64)).wrapping_add(jitter[i]), i as f64 * 0.1)).collect();
            prop_assert_eq!(bits(&decode(&encode(&v)).unwrap()), bits(&v));
        }

        #[test]
        fn decimal_round_trip(k in 1usize..=MAX_DECIMALS,
                              ints in proptest::collection::vec(-10_000_000i64..10_000_000, 1..150)) {
            let v: Vec<Sample> = ints.iter().enumerate()
                .map(|(i, &x)| s(i as i64 * 1000, x as f64 / POW10[k]))
                .collect();
            let enc = encode(&v);
            prop_assert_ne!(enc[1], MODE_XOR);
            prop_assert_eq!(bits(&decode(&enc).unwrap()), bits(&v));
        }

        #[test]
        fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&b);
        }
    }
}
