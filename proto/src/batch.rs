//! The series of one write without an allocation per label or per series.
//!
//! [`SeriesBatch`] is what the ingest decoder produces: every label name and value of a request
//! back to back in one string, label spans and samples in flat vectors. It is owned (so it can
//! cross to a blocking thread or be shared by the writes to several replicas) and is read
//! through a [`WriteView`], which borrows every label as a [`LabelRef`].
//!
//! [`WriteView`] is also what the storage engine writes: a view of a [`SeriesBatch`] (all of it,
//! or the series one node owns) or of a protobuf [`WriteRequest`], whose strings it borrows.

use crate::labels::{AsLabel, LabelRef};
use crate::storage::{Sample, Series, WriteRequest};
use std::ops::Range;
use std::sync::Arc;

/// Byte ranges of one label's name and value in [`SeriesBatch`]'s text.
#[derive(Debug, Clone, Copy)]
struct LabelSpan {
    name: (u32, u32),
    value: (u32, u32),
}

/// Where one series' labels and samples end in [`SeriesBatch`]'s flat vectors (each series
/// starts where the previous one ends).
#[derive(Debug, Clone, Copy)]
struct SeriesEnd {
    labels: u32,
    samples: u32,
}

/// Owned series of one write, stored flat (see the module docs).
#[derive(Debug, Default, Clone)]
pub struct SeriesBatch {
    text: String,
    labels: Vec<LabelSpan>,
    samples: Vec<Sample>,
    series: Vec<SeriesEnd>,
}

/// Why a series could not be added to a [`SeriesBatch`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("write batch over 4 GiB of labels or 4 G labels or samples")]
pub struct BatchFull;

impl SeriesBatch {
    /// An empty batch with room for `series` series.
    pub fn with_capacity(series: usize) -> Self {
        Self { series: Vec::with_capacity(series), ..Self::default() }
    }

    /// Makes room for `text` more bytes of label text, `labels` more labels and `samples`
    /// more samples (so that filling the batch does not copy it as it grows).
    pub fn reserve(&mut self, text: usize, labels: usize, samples: usize) {
        self.text.reserve(text);
        self.labels.reserve(labels);
        self.samples.reserve(samples);
    }

    /// Appends a series (labels as given: the caller validates and sorts them).
    pub fn push<L: AsLabel>(&mut self, labels: &[L], samples: &[Sample]) -> Result<(), BatchFull> {
        for l in labels {
            let name = self.put(l.name())?;
            let value = self.put(l.value())?;
            self.labels.push(LabelSpan { name, value });
        }
        self.end_series(samples)
    }

    /// [`SeriesBatch::push`] of labels that all borrow from `text` (e.g. a run of protobuf
    /// label fields checked as UTF-8 in one go): `text` is copied whole, in one go, and the
    /// labels become ranges of the copy. Labels outside `text` are copied one by one.
    pub fn push_in(
        &mut self,
        text: &str,
        labels: &[LabelRef<'_>],
        samples: &[Sample],
    ) -> Result<(), BatchFull> {
        let within = |s: &str| {
            let at = (s.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
            (at <= text.len() && s.len() <= text.len() - at).then_some(at)
        };
        let mut spans = labels.iter().map(|l| Some((within(l.name)?, within(l.value)?)));
        if !spans.all(|s| s.is_some()) {
            return self.push(labels, samples);
        }
        let base = self.text.len();
        self.text.push_str(text);
        let span = |s: &str| -> Result<(u32, u32), BatchFull> {
            let at = base + within(s).unwrap_or_default();
            let start = u32::try_from(at).map_err(|_| BatchFull)?;
            let end = u32::try_from(at + s.len()).map_err(|_| BatchFull)?;
            Ok((start, end))
        };
        for l in labels {
            self.labels.push(LabelSpan { name: span(l.name)?, value: span(l.value)? });
        }
        self.end_series(samples)
    }

    /// Ends the series whose labels were just pushed, with its samples.
    fn end_series(&mut self, samples: &[Sample]) -> Result<(), BatchFull> {
        self.samples.extend_from_slice(samples);
        let end = SeriesEnd {
            labels: u32::try_from(self.labels.len()).map_err(|_| BatchFull)?,
            samples: u32::try_from(self.samples.len()).map_err(|_| BatchFull)?,
        };
        self.series.push(end);
        Ok(())
    }

    /// Copies `s` into the text; its range.
    fn put(&mut self, s: &str) -> Result<(u32, u32), BatchFull> {
        let start = u32::try_from(self.text.len()).map_err(|_| BatchFull)?;
        self.text.push_str(s);
        let end = u32::try_from(self.text.len()).map_err(|_| BatchFull)?;
        Ok((start, end))
    }

    /// Series in the batch.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether the batch has no series.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Samples in the batch.
    pub fn sample_count(&self) -> usize {
        self.samples.len()
    }

    fn ranges(&self, i: usize) -> (Range<usize>, Range<usize>) {
        let start =
            i.checked_sub(1).map_or(SeriesEnd { labels: 0, samples: 0 }, |p| self.series[p]);
        let end = self.series[i];
        (start.labels as usize..end.labels as usize, start.samples as usize..end.samples as usize)
    }

    fn label(&self, span: &LabelSpan) -> LabelRef<'_> {
        let text = |(start, end): (u32, u32)| &self.text[start as usize..end as usize];
        LabelRef { name: text(span.name), value: text(span.value) }
    }

    /// The labels of series `i` (panics when out of range, like indexing).
    pub fn labels(&self, i: usize) -> impl ExactSizeIterator<Item = LabelRef<'_>> + '_ {
        let (labels, _) = self.ranges(i);
        self.labels[labels].iter().map(|s| self.label(s))
    }

    /// The samples of series `i` (panics when out of range, like indexing).
    pub fn samples(&self, i: usize) -> &[Sample] {
        let (_, samples) = self.ranges(i);
        &self.samples[samples]
    }

    /// Series `i` as an owned protobuf series.
    pub fn to_series(&self, i: usize) -> Series {
        Series {
            labels: self.labels(i).map(|l| l.to_label()).collect(),
            samples: self.samples(i).to_vec(),
        }
    }

    /// A view of every series of the batch, for `tenant`.
    pub fn view<'a>(&'a self, tenant: &'a str) -> WriteView<'a> {
        let mut v = WriteView::with_capacity(tenant, self.len(), self.labels.len());
        for i in 0..self.len() {
            v.push(self.labels(i), self.samples(i));
        }
        v
    }

    /// A view of the series at `indices`, in that order, for `tenant`.
    pub fn view_of<'a>(&'a self, tenant: &'a str, indices: &[usize]) -> WriteView<'a> {
        let mut v = WriteView::with_capacity(tenant, indices.len(), 0);
        for &i in indices {
            v.push(self.labels(i), self.samples(i));
        }
        v
    }
}

impl TryFrom<&[Series]> for SeriesBatch {
    type Error = BatchFull;

    fn try_from(series: &[Series]) -> Result<Self, BatchFull> {
        let mut batch = Self::with_capacity(series.len());
        for s in series {
            batch.push(&s.labels, &s.samples)?;
        }
        Ok(batch)
    }
}

/// Some or all series of a shared [`SeriesBatch`], to be written to one storage node.
#[derive(Debug, Clone)]
pub struct BatchWrite {
    /// The tenant the series belong to.
    pub tenant: String,
    /// The decoded request.
    pub batch: Arc<SeriesBatch>,
    /// Which series of `batch` to write; `None` means all of them.
    pub only: Option<Vec<usize>>,
}

impl BatchWrite {
    /// A view of the series to write.
    pub fn view(&self) -> WriteView<'_> {
        match &self.only {
            None => self.batch.view(&self.tenant),
            Some(indices) => self.batch.view_of(&self.tenant, indices),
        }
    }

    /// Series to write.
    pub fn len(&self) -> usize {
        self.only.as_ref().map_or(self.batch.len(), Vec::len)
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same write as a protobuf request (owned strings: for the network).
    pub fn to_request(&self) -> WriteRequest {
        let series = match &self.only {
            None => (0..self.batch.len()).map(|i| self.batch.to_series(i)).collect(),
            Some(indices) => indices.iter().map(|&i| self.batch.to_series(i)).collect(),
        };
        WriteRequest { tenant: self.tenant.clone(), series }
    }
}

/// The series of one write, borrowed: what the storage engine writes.
#[derive(Debug, Clone)]
pub struct WriteView<'a> {
    tenant: &'a str,
    labels: Vec<LabelRef<'a>>,
    /// Per series: where its labels end in `labels`, and its samples.
    series: Vec<(usize, &'a [Sample])>,
}

impl<'a> WriteView<'a> {
    /// An empty view for `tenant`, with room for `series` series and `labels` labels.
    pub fn with_capacity(tenant: &'a str, series: usize, labels: usize) -> Self {
        Self { tenant, labels: Vec::with_capacity(labels), series: Vec::with_capacity(series) }
    }

    /// Appends a series.
    pub fn push(&mut self, labels: impl IntoIterator<Item = LabelRef<'a>>, samples: &'a [Sample]) {
        self.labels.extend(labels);
        self.series.push((self.labels.len(), samples));
    }

    /// The tenant.
    pub fn tenant(&self) -> &'a str {
        self.tenant
    }

    /// Series in the view.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether the view has no series.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// The labels of series `i` (panics when out of range, like indexing).
    pub fn labels(&self, i: usize) -> &[LabelRef<'a>] {
        let start = i.checked_sub(1).map_or(0, |p| self.series[p].0);
        &self.labels[start..self.series[i].0]
    }

    /// The samples of series `i` (panics when out of range, like indexing).
    pub fn samples(&self, i: usize) -> &'a [Sample] {
        self.series[i].1
    }

    /// Every series: its labels and samples.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[LabelRef<'a>], &'a [Sample])> + '_ {
        (0..self.len()).map(|i| (self.labels(i), self.samples(i)))
    }
}

impl<'a> From<&'a WriteRequest> for WriteView<'a> {
    fn from(req: &'a WriteRequest) -> Self {
        let labels = req.series.iter().map(|s| s.labels.len()).sum();
        let mut v = Self::with_capacity(&req.tenant, req.series.len(), labels);
        for s in &req.series {
            v.push(s.labels.iter().map(LabelRef::of), &s.samples);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Label;

    /// Labels borrowed from a text are pushed as ranges of its copy, in the order given;
    /// a label from elsewhere makes the series copy label by label; both read back alike.
    #[test]
    fn push_in_equals_push() {
        let text = String::from("\n\x08__name__\x12\x02upzone\x12\x06東京");
        let (name, up) = (&text[2..10], &text[12..14]);
        let (zone, tokyo) = (&text[14..18], &text[20..]);
        let other = String::from("job");
        let samples = [Sample { timestamp_ms: 1, value: 2.0 }];
        let cases: [Vec<LabelRef>; 2] = [
            vec![LabelRef { name, value: up }, LabelRef { name: zone, value: tokyo }],
            vec![LabelRef { name, value: up }, LabelRef { name: &other, value: tokyo }],
        ];
        for labels in cases {
            let (mut a, mut b) = (SeriesBatch::default(), SeriesBatch::default());
            for _ in 0..2 {
                a.push_in(&text, &labels, &samples).expect("fits");
                b.push(&labels, &samples).expect("fits");
            }
            for i in 0..2 {
                assert!(a.labels(i).eq(b.labels(i)));
                assert!(a.labels(i).eq(labels.iter().copied()));
                assert_eq!(a.samples(i), b.samples(i));
            }
        }
    }

    fn series(labels: &[(&str, &str)], samples: &[i64]) -> Series {
        Series {
            labels: labels
                .iter()
                .map(|(n, v)| Label { name: (*n).into(), value: (*v).into() })
                .collect(),
            samples: samples.iter().map(|&t| Sample { timestamp_ms: t, value: t as f64 }).collect(),
        }
    }

    #[test]
    fn batch_round_trips_series_and_views_agree() {
        let input = vec![
            series(&[("__name__", "up"), ("job", "a")], &[1, 2]),
            series(&[("__name__", "x")], &[]),
            series(&[("__name__", "y"), ("a", "\u{1F600}"), ("b", "")], &[3]),
        ];
        let batch = SeriesBatch::try_from(input.as_slice()).unwrap();
        assert_eq!((batch.len(), batch.sample_count()), (3, 3));
        for (i, s) in input.iter().enumerate() {
            assert_eq!(&batch.to_series(i), s);
        }
        let req = WriteRequest { tenant: "t".into(), series: input.clone() };
        let from_req = WriteView::from(&req);
        let from_batch = batch.view("t");
        assert_eq!(from_req.tenant(), from_batch.tenant());
        for ((la, sa), (lb, sb)) in from_req.iter().zip(from_batch.iter()) {
            assert_eq!((la, sa), (lb, sb));
        }
        let only =
            BatchWrite { tenant: "t".into(), batch: Arc::new(batch), only: Some(vec![2, 0]) };
        let r = only.to_request();
        assert_eq!(r.series, vec![input[2].clone(), input[0].clone()]);
        assert_eq!(only.view().labels(1), from_req.labels(0));
        assert_eq!(only.len(), 2);
    }
}
