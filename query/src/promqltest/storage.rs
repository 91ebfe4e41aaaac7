//! An in-memory [`SeriesSource`] for the conformance runner and tests.

use crate::source::{Selected, SeriesSource, SourceError};
use basin_proto::matcher::Matcher;
use basin_proto::node::SharedSeries;
use basin_proto::storage::{self, Label, SelectHints};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Series held in memory; selects honour the matchers with Prometheus semantics.
#[derive(Debug, Default, Clone)]
pub struct MemSource {
    series: HashMap<Vec<Label>, BTreeMap<i64, f64>>,
}

impl MemSource {
    /// An empty source.
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops every series.
    pub fn clear(&mut self) {
        self.series.clear();
    }

    /// Adds samples to a series (labels in any order); a sample at an existing timestamp
    /// replaces it.
    pub fn add(&mut self, mut labels: Vec<Label>, samples: impl IntoIterator<Item = (i64, f64)>) {
        labels.retain(|l| !l.value.is_empty());
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        self.series.entry(labels).or_default().extend(samples);
    }
}

#[async_trait::async_trait]
impl SeriesSource for MemSource {
    async fn select(
        &self,
        matchers: &[storage::Matcher],
        start_ms: i64,
        end_ms: i64,
        _hints: &SelectHints,
    ) -> Result<Selected, SourceError> {
        let compiled =
            Matcher::compile_all(matchers).map_err(|e| SourceError::BadRequest(e.to_string()))?;
        let mut out = Vec::new();
        for (labels, samples) in &self.series {
            if !compiled.iter().all(|m| m.matches_labels(labels)) {
                continue;
            }
            let samples: Vec<storage::Sample> = samples
                .range(start_ms..=end_ms)
                .map(|(&t, &v)| storage::Sample { timestamp_ms: t, value: v })
                .collect();
            out.push(SharedSeries::new(Arc::new(labels.clone()), samples));
        }
        out.sort_by(|a, b| basin_proto::labels::cmp_labels(&a.labels, &b.labels));
        Ok(Selected { series: out, warnings: Vec::new() })
    }
}
