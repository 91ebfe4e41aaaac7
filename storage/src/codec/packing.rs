//! Packings of a chunk's integer residuals (deltas, delta-of-deltas or distances from a
//! line), each chosen per sequence when it is the smallest:
//!
//! - **fixed** (frame of reference): `width (1) | min | g`, then every `(r - min) / g` in
//!   exactly `width` bits. Best when residuals spread evenly over a range.
//! - **Rice**: `k (1) | center`, then every `u = zigzag(r - center)` as `u >> k` in unary
//!   (that many 1 bits, then a 0) followed by its `k` low bits. Best for bell-shaped noise
//!   around a typical value (a noisy counter's increments): about a bit per sample less
//!   than fixed width, which must cover the rare wide ones too.
//! - **radix**: `min | g | radix`, then the quotients `(r - min) / g` as base-`radix`
//!   digits, as many as fit in 64 bits per word, each word in as few bytes as it needs.
//!   Best when the range is just above a power of two: scrape jitter of 0–2 ms is 3 values,
//!   1.6 bits instead of 2.
//!
//! Bits are written least significant first. `min` and `center` are zigzag varints, `g`
//! and `radix` varints. Arithmetic wraps, so any `i64` residuals round-trip.

use super::{CodecError, unzigzag, zigzag};
use crate::series::{get_uvarint, put_uvarint};

/// Code of each packing in the sequence tag.
pub(super) const FIXED: u8 = 0;
pub(super) const RICE: u8 = 1;
pub(super) const RADIX: u8 = 2;

/// How one run of residuals is packed, with its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Packing {
    Fixed { min: i64, g: u64, width: u32 },
    Rice { center: i64, k: u32 },
    Radix { min: i64, g: u64, radix: u64 },
}

pub(super) fn uvarint_len(v: u64) -> usize {
    (64 - v.leading_zeros() as usize).max(1).div_ceil(7)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn bits_of(v: u64) -> u32 {
    64 - v.leading_zeros()
}

/// Digits of base `radix` that fit in one 64-bit word (`radix` ≥ 2).
fn digits_per_word(radix: u64) -> u32 {
    let (mut d, mut p) = (0u32, 1u64);
    while let Some(next) = p.checked_mul(radix) {
        p = next;
        d += 1;
    }
    d.max(1)
}

/// Bytes holding a word of `digits` base-`radix` digits.
fn word_bytes(radix: u64, digits: u32) -> usize {
    let max = (0..digits).fold(1u128, |p, _| p * u128::from(radix)) - 1;
    (128 - max.leading_zeros() as usize).div_ceil(8)
}

impl Packing {
    /// The smallest packing of `residuals` and its size in bytes.
    pub(super) fn best(residuals: &[i64]) -> (Packing, usize) {
        let min = residuals.iter().copied().min().unwrap_or(0);
        let offsets = residuals.iter().map(|&r| r.wrapping_sub(min) as u64);
        // Noisy values reach a divisor of 1 early, and no later offset changes it.
        let g =
            offsets.clone().try_fold(0, |g, o| Some(gcd(g, o)).filter(|&g| g != 1)).unwrap_or(1);
        let max_q = offsets.max().unwrap_or(0).checked_div(g).unwrap_or(0);
        let mut options = vec![Packing::Fixed { min, g, width: bits_of(max_q) }];
        if let Some(radix) = max_q.checked_add(1).filter(|&r| r >= 3) {
            options.push(Packing::Radix { min, g, radix });
        }
        let sized = options.into_iter().map(|p| (p, p.bytes(residuals)));
        sized
            .chain(rice(residuals))
            .min_by_key(|&(_, bytes)| bytes)
            .unwrap_or((Packing::Fixed { min: 0, g: 0, width: 0 }, 0))
    }

    /// The code stored in the sequence tag.
    pub(super) fn code(&self) -> u8 {
        match self {
            Packing::Fixed { .. } => FIXED,
            Packing::Rice { .. } => RICE,
            Packing::Radix { .. } => RADIX,
        }
    }

    /// Encoded size of `residuals`, header included.
    fn bytes(&self, residuals: &[i64]) -> usize {
        let m = residuals.len();
        match *self {
            Packing::Fixed { min, g, width } => {
                1 + uvarint_len(zigzag(min)) + uvarint_len(g) + (m * width as usize).div_ceil(8)
            }
            Packing::Rice { center, k } => {
                let bits = residuals.iter().fold(0u64, |acc, &r| {
                    let u = zigzag(r.wrapping_sub(center));
                    acc.saturating_add(1 + u64::from(k)).saturating_add(u >> k)
                });
                1 + uvarint_len(zigzag(center))
                    + usize::try_from(bits.div_ceil(8)).unwrap_or(usize::MAX)
            }
            Packing::Radix { min, g, radix } => {
                let d = digits_per_word(radix) as usize;
                let (full, rest) = (m / d, m % d);
                let mut bytes = full * word_bytes(radix, d as u32);
                if rest > 0 {
                    bytes += word_bytes(radix, rest as u32);
                }
                uvarint_len(zigzag(min)) + uvarint_len(g) + uvarint_len(radix) + bytes
            }
        }
    }

    /// Appends the header and the packed `residuals`.
    pub(super) fn write(&self, residuals: &[i64], b: &mut Vec<u8>) {
        match *self {
            Packing::Fixed { min, g, width } => {
                b.push(width as u8);
                put_uvarint(b, zigzag(min));
                put_uvarint(b, g);
                let mut w = BitWriter::new(b);
                if width > 0 {
                    for &r in residuals {
                        w.put(r.wrapping_sub(min) as u64 / g, width);
                    }
                }
                w.finish();
            }
            Packing::Rice { center, k } => {
                b.push(k as u8);
                put_uvarint(b, zigzag(center));
                let mut w = BitWriter::new(b);
                for &r in residuals {
                    let u = zigzag(r.wrapping_sub(center));
                    let mut q = u >> k;
                    while q >= 32 {
                        w.put(u64::from(u32::MAX), 32);
                        q -= 32;
                    }
                    // q ones, then the terminating zero.
                    w.put((1u64 << q) - 1, q as u32 + 1);
                    if k > 0 {
                        w.put(u & (u64::MAX >> (64 - k)), k);
                    }
                }
                w.finish();
            }
            Packing::Radix { min, g, radix } => {
                put_uvarint(b, zigzag(min));
                put_uvarint(b, g);
                put_uvarint(b, radix);
                let d = digits_per_word(radix) as usize;
                for word in residuals.chunks(d) {
                    // Most significant digit first, so the last one read is the first value.
                    let v = word
                        .iter()
                        .rev()
                        .fold(0u64, |acc, &r| acc * radix + r.wrapping_sub(min) as u64 / g);
                    let n = word_bytes(radix, word.len() as u32);
                    b.extend_from_slice(&v.to_le_bytes()[..n]);
                }
            }
        }
    }
}

/// The Rice packing with the best `k` near the mean magnitude, centered on the median, and
/// its size: [`Packing::bytes`] of each candidate `k`, all summed in one pass.
fn rice(residuals: &[i64]) -> Option<(Packing, usize)> {
    if residuals.is_empty() {
        return None;
    }
    let mut copy = residuals.to_vec();
    let mid = copy.len() / 2;
    let center = *copy.select_nth_unstable(mid).1;
    let sum =
        residuals.iter().fold(0u128, |acc, &r| acc + u128::from(zigzag(r.wrapping_sub(center))));
    let mean = u64::try_from(sum / residuals.len() as u128).unwrap_or(u64::MAX);
    let k0 = bits_of(mean).saturating_sub(1);
    let ks = [k0.saturating_sub(1), k0, (k0 + 1).min(63)];
    let mut bits = [0u64; 3];
    for &r in residuals {
        let u = zigzag(r.wrapping_sub(center));
        for (b, &k) in bits.iter_mut().zip(&ks) {
            *b = b.saturating_add(1 + u64::from(k)).saturating_add(u >> k);
        }
    }
    let header = 1 + uvarint_len(zigzag(center));
    ks.iter()
        .zip(bits)
        .map(|(&k, bits)| {
            let body = usize::try_from(bits.div_ceil(8)).unwrap_or(usize::MAX);
            (Packing::Rice { center, k }, header.saturating_add(body))
        })
        .min_by_key(|&(_, bytes)| bytes)
}

/// Reads `count` residuals packed with `code` from `b` at `*pos` into `out`, replacing
/// what it held (a buffer reused from chunk to chunk).
pub(super) fn read(
    code: u8,
    b: &[u8],
    pos: &mut usize,
    count: usize,
    what: &'static str,
    out: &mut Vec<i64>,
) -> Result<(), CodecError> {
    let truncated = CodecError::Truncated(what);
    let uvarint = |pos: &mut usize| get_uvarint(b, pos).ok_or(CodecError::Truncated(what));
    out.clear();
    out.reserve(count);
    match code {
        FIXED => {
            let width = u32::from(*b.get(*pos).ok_or(truncated.clone())?);
            *pos += 1;
            if width > 64 {
                return Err(CodecError::Unknown { what: "bit width", value: width as u8 });
            }
            let min = unzigzag(uvarint(pos)?);
            let g = uvarint(pos)?;
            let mut r = BitReader::new(b, *pos);
            for _ in 0..count {
                let q = r.get(width).ok_or(truncated.clone())?;
                out.push(min.wrapping_add(q.wrapping_mul(g) as i64));
            }
            *pos = r.end();
        }
        RICE => {
            let k = u32::from(*b.get(*pos).ok_or(truncated.clone())?);
            *pos += 1;
            if k > 63 {
                return Err(CodecError::Unknown { what: "Rice parameter", value: k as u8 });
            }
            let center = unzigzag(uvarint(pos)?);
            let mut r = BitReader::new(b, *pos);
            for _ in 0..count {
                let q = r.unary().ok_or(truncated.clone())?;
                let low = r.get(k).ok_or(truncated.clone())?;
                let u = u64::try_from((u128::from(q) << k) | u128::from(low))
                    .map_err(|_| CodecError::Truncated(what))?;
                out.push(center.wrapping_add(unzigzag(u)));
            }
            *pos = r.end();
        }
        RADIX => {
            let min = unzigzag(uvarint(pos)?);
            let g = uvarint(pos)?;
            let radix = uvarint(pos)?;
            if radix < 2 {
                return Err(CodecError::Unknown { what: "radix", value: radix as u8 });
            }
            let d = digits_per_word(radix) as usize;
            let split = digit_splitter(radix);
            let mut left = count;
            while left > 0 {
                let digits = left.min(d);
                let n = word_bytes(radix, digits as u32);
                let bytes = b.get(*pos..*pos + n).ok_or(truncated.clone())?;
                *pos += n;
                let mut word = [0u8; 8];
                word[..n].copy_from_slice(bytes);
                split(u64::from_le_bytes(word), radix, digits, min, g, out);
                left -= digits;
            }
        }
        other => return Err(CodecError::Unknown { what: "packing", value: other }),
    }
    Ok(())
}

/// Appends the `digits` base-`radix` digits of `v` (least significant first) to `out`, each as
/// `min + digit * g`.
type SplitDigits = fn(u64, u64, usize, i64, u64, &mut Vec<i64>);

/// The digit splitter for `radix`: small radices, the common ones, get a constant divisor,
/// which compiles to a multiplication instead of a 64-bit division per digit.
fn digit_splitter(radix: u64) -> SplitDigits {
    match radix {
        2 => split_const::<2>,
        3 => split_const::<3>,
        4 => split_const::<4>,
        5 => split_const::<5>,
        6 => split_const::<6>,
        7 => split_const::<7>,
        8 => split_const::<8>,
        9 => split_const::<9>,
        10 => split_const::<10>,
        11 => split_const::<11>,
        12 => split_const::<12>,
        13 => split_const::<13>,
        _ => split_any,
    }
}

fn split_const<const R: u64>(
    v: u64,
    _radix: u64,
    digits: usize,
    min: i64,
    g: u64,
    out: &mut Vec<i64>,
) {
    split_any(v, R, digits, min, g, out);
}

#[inline(always)]
fn split_any(mut v: u64, radix: u64, digits: usize, min: i64, g: u64, out: &mut Vec<i64>) {
    for _ in 0..digits {
        out.push(min.wrapping_add(((v % radix).wrapping_mul(g)) as i64));
        v /= radix;
    }
}

/// Appends bits to a byte vector, least significant first.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u128,
    filled: u32,
}

impl<'a> BitWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        Self { out, acc: 0, filled: 0 }
    }

    /// Appends the low `n` bits of `v` (`n` ≤ 64).
    fn put(&mut self, v: u64, n: u32) {
        if n == 0 {
            return;
        }
        let v = if n == 64 { v } else { v & ((1u64 << n) - 1) };
        self.acc |= u128::from(v) << self.filled;
        self.filled += n;
        while self.filled >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.filled -= 8;
        }
    }

    fn finish(self) {
        if self.filled > 0 {
            self.out.push(self.acc as u8);
        }
    }
}

/// Reads bits written by [`BitWriter`] from `b`, starting at byte `start`.
struct BitReader<'a> {
    b: &'a [u8],
    /// Next bit, counted from the start of `b`.
    bit: usize,
}

impl<'a> BitReader<'a> {
    fn new(b: &'a [u8], start: usize) -> Self {
        Self { b, bit: start * 8 }
    }

    /// The 8 bytes from the current one, when that many remain.
    fn word(&self) -> Option<u64> {
        let at = self.bit / 8;
        let bytes: [u8; 8] = self.b.get(at..at + 8)?.try_into().ok()?;
        Some(u64::from_le_bytes(bytes))
    }

    /// The next `n` bits (`n` ≤ 64) as a number, or `None` past the end.
    fn get(&mut self, n: u32) -> Option<u64> {
        let offset = (self.bit % 8) as u32;
        if n + offset <= 64
            && let Some(word) = self.word()
        {
            // One load for the common case; the loop below for the last bytes and n > 56.
            let v = if n == 0 { 0 } else { (word >> offset) & (u64::MAX >> (64 - n)) };
            self.bit += n as usize;
            return Some(v);
        }
        let mut v = 0u64;
        let mut got = 0u32;
        while got < n {
            let byte = *self.b.get(self.bit / 8)?;
            let offset = (self.bit % 8) as u32;
            let take = (8 - offset).min(n - got);
            let bits = (u64::from(byte) >> offset) & ((1u64 << take) - 1);
            v |= bits << got;
            got += take;
            self.bit += take as usize;
        }
        Some(v)
    }

    /// Counts 1 bits up to the next 0 bit (consumed too), or `None` past the end.
    fn unary(&mut self) -> Option<u64> {
        let mut q = 0u64;
        while let Some(word) = self.word() {
            let offset = (self.bit % 8) as u32;
            let ones = (!(word >> offset)).trailing_zeros().min(64 - offset);
            if ones < 64 - offset {
                self.bit += ones as usize + 1;
                return Some(q + u64::from(ones));
            }
            q += u64::from(64 - offset);
            self.bit += (64 - offset) as usize;
        }
        loop {
            let byte = *self.b.get(self.bit / 8)?;
            let offset = self.bit % 8;
            let rest = byte >> offset;
            let ones = (!rest).trailing_zeros().min(8 - offset as u32) as usize;
            q += ones as u64;
            self.bit += ones;
            if offset + ones < 8 {
                self.bit += 1;
                return Some(q);
            }
        }
    }

    /// The byte after the last one read from.
    fn end(&self) -> usize {
        self.bit.div_ceil(8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_reports_the_size_of_the_packing_it_picks() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for case in 0..400 {
            let n = 1 + (next() % 200) as usize;
            let spread = 1u64 << (case % 40);
            let scale = [1, 3, 4096][case % 3];
            let rs: Vec<i64> =
                (0..n).map(|_| (next() % spread) as i64 * scale - (spread / 2) as i64).collect();
            let (p, bytes) = Packing::best(&rs);
            assert_eq!(bytes, p.bytes(&rs), "{p:?}");
            if let Some((r, rb)) = rice(&rs) {
                assert_eq!(rb, r.bytes(&rs), "{r:?}");
                assert!(bytes <= rb);
            }
            assert_eq!(round_trip(&rs, p), rs);
        }
    }

    fn round_trip(residuals: &[i64], p: Packing) -> Vec<i64> {
        let mut b = vec![0xaa];
        p.write(residuals, &mut b);
        assert_eq!(b.len() - 1, p.bytes(residuals), "{p:?} size");
        let mut pos = 1;
        let mut got = vec![7];
        read(p.code(), &b, &mut pos, residuals.len(), "test", &mut got).unwrap();
        assert_eq!(pos, b.len(), "{p:?} consumed everything");
        got
    }

    #[test]
    fn every_packing_round_trips_extremes() {
        let rs = [0, 1, -1, i64::MAX, i64::MIN, 42, -4096, 7];
        let min = i64::MIN;
        for p in [
            Packing::Fixed { min, g: 1, width: 64 },
            Packing::Rice { center: 3, k: 62 },
            Packing::best(&rs).0,
        ] {
            assert_eq!(round_trip(&rs, p), rs, "{p:?}");
        }
        // The largest radix: one digit per word.
        let rs = [i64::MIN, i64::MAX - 1, 0];
        assert_eq!(round_trip(&rs, Packing::Radix { min: i64::MIN, g: 1, radix: u64::MAX }), rs);
    }

    /// Every radix round trips, those with a constant-divisor splitter and the others.
    #[test]
    fn radix_packing_round_trips_each_small_radix() {
        for radix in 2..=20u64 {
            let rs: Vec<i64> =
                (0..300).map(|i| -7 + 5 * ((i * 7919 + i / 3) % radix) as i64).collect();
            let p = Packing::Radix { min: -7, g: 5, radix };
            assert_eq!(round_trip(&rs, p), rs, "radix {radix}");
        }
    }

    #[test]
    fn jitter_of_three_values_takes_radix_three() {
        let rs: Vec<i64> = (0..480).map(|i| 15_000 + (i * 7 % 3) - 1).collect();
        let (p, bytes) = Packing::best(&rs);
        assert_eq!(p, Packing::Radix { min: 14_999, g: 1, radix: 3 });
        assert!(bytes <= 480 * 16 / 10 / 8 + 16, "{bytes} bytes");
        assert_eq!(round_trip(&rs, p), rs);
    }

    #[test]
    fn bell_shaped_noise_takes_rice_and_beats_fixed_width() {
        // A sum of uniforms: bell-shaped increments around 750, spread ±300.
        let mut x = 12345u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 201) as i64
        };
        let rs: Vec<i64> = (0..480).map(|_| 450 + next() + next() + next()).collect();
        let (p, bytes) = Packing::best(&rs);
        assert!(matches!(p, Packing::Rice { .. }), "{p:?}");
        let min = *rs.iter().min().unwrap();
        let max = *rs.iter().max().unwrap();
        let fixed = Packing::Fixed { min, g: 1, width: bits_of((max - min) as u64) };
        assert!(bytes < fixed.bytes(&rs), "{bytes} vs {}", fixed.bytes(&rs));
        assert_eq!(round_trip(&rs, p), rs);
    }

    #[test]
    fn truncated_streams_are_errors() {
        let rs: Vec<i64> = (0..100).map(|i| i * i % 37).collect();
        for p in [
            Packing::Fixed { min: 0, g: 1, width: 6 },
            Packing::Rice { center: 18, k: 3 },
            Packing::Radix { min: 0, g: 1, radix: 37 },
        ] {
            let mut b = Vec::new();
            p.write(&rs, &mut b);
            for cut in 0..b.len() {
                let mut pos = 0;
                let mut out = Vec::new();
                let got = read(p.code(), &b[..cut], &mut pos, rs.len(), "t", &mut out);
                assert!(got.is_err(), "{p:?} {cut}");
            }
        }
    }
}
