//! The API's view of Basin's PromQL engine: [`QueryEngine`] for [`Engine`], and
//! [`QueryApi::new`], which builds the engine from the [`QueryConfig`].

use super::{QueryApi, QueryConfig, QueryEngine};
use crate::metrics::QueryMetrics;
use crate::promql::{Annotated, Engine, EngineOptions, EvalError};
use crate::source::SeriesSource;
use basin_proto::node::StorageNode;
use std::sync::Arc;

#[async_trait::async_trait]
impl QueryEngine for Engine {
    async fn instant(
        &self,
        src: &dyn SeriesSource,
        query: &str,
        time_ms: i64,
    ) -> Result<Annotated, EvalError> {
        self.instant_annotated(src, query, time_ms).await
    }

    async fn range(
        &self,
        src: &dyn SeriesSource,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<Annotated, EvalError> {
        self.range_annotated(src, query, start_ms, end_ms, step_ms).await
    }
}

impl QueryApi {
    /// The API over `nodes`, evaluating with Basin's PromQL [`Engine`].
    pub fn new(
        cfg: QueryConfig,
        nodes: Vec<Arc<dyn StorageNode>>,
        metrics: Arc<QueryMetrics>,
    ) -> Self {
        let engine = Engine::new(EngineOptions {
            lookback_delta: cfg.lookback_delta,
            max_samples: cfg.max_samples,
            timeout: cfg.timeout,
        });
        Self::with_engine(cfg, nodes, metrics, Arc::new(engine))
    }
}
