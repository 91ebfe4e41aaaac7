//! The storage crate's error type and its one mapping to `tonic::Status`.
//!
//! Callers (gateways, query nodes, the standalone wiring) decide whether to retry from the
//! status code alone, so the mapping is the contract: `InvalidArgument` for input that will
//! never succeed, `ResourceExhausted` for limits and a full disk, `Unavailable` for conditions
//! that pass (a busy or shutting-down engine), `DataLoss` for corruption, `Internal` otherwise.
//!
//! A full disk (ENOSPC, or a quota) is `ResourceExhausted` with a message starting with
//! [`DISK_FULL`]: the write was not applied and may be retried. RocksDB stops writes on such an
//! error and resumes them by itself once space is free (see `engine::options`); reads go on.

use thiserror::Error;

/// How a disk-full status message starts (callers and operators can match on it).
pub const DISK_FULL: &str = "disk full";

/// Everything that can go wrong in the storage engine.
#[derive(Debug, Error)]
pub enum StorageError {
    /// The request is malformed (unsorted labels, bad regex, …); retrying will not help.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A per-request limit was hit; the message names the limit and its value.
    #[error("{what} exceeds {limit_name} ({limit})")]
    LimitExceeded {
        /// What was counted, e.g. "select matched more than 10 series".
        what: String,
        /// The configuration name of the limit, e.g. `max_series_per_select`.
        limit_name: &'static str,
        /// The limit in force.
        limit: usize,
    },
    /// Stored bytes that cannot be decoded: names the series (when known) and the key.
    #[error("corrupt data for series {series} at key {key}: {reason}")]
    Corrupt {
        /// The series' labels as Prometheus prints them, or its id when the labels are unknown.
        series: String,
        /// The RocksDB key, hex encoded.
        key: String,
        /// What was wrong.
        reason: String,
    },
    /// RocksDB failed.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A filesystem operation failed (creating the data directory, …).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The blocking task running the operation was cancelled or panicked.
    #[error("storage task failed: {0}")]
    Task(String),
}

impl StorageError {
    /// A corruption error for `key`, naming the series.
    pub(crate) fn corrupt(
        series: impl Into<String>,
        key: &[u8],
        reason: impl Into<String>,
    ) -> Self {
        Self::Corrupt { series: series.into(), key: hex(key), reason: reason.into() }
    }

    /// Whether the error is the disk running out of space or quota (retryable once space is
    /// freed). RocksDB reports ENOSPC as an `IOError` whose text is "No space left on device"
    /// (its `kNoSpace` subcode has the same text); EDQUOT keeps the OS' text.
    pub fn is_no_space(&self) -> bool {
        match self {
            Self::Rocks(e) => {
                let s = e.to_string();
                s.contains("No space left") || s.contains("Disk quota exceeded")
            }
            Self::Io(e) => matches!(
                e.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ),
            _ => false,
        }
    }

    /// The gRPC status for this error.
    pub fn to_status(&self) -> tonic::Status {
        use rocksdb::ErrorKind as K;
        let msg = self.to_string();
        if self.is_no_space() {
            return tonic::Status::resource_exhausted(format!(
                "{DISK_FULL}: no space left in the storage node's data directory; writes are \
                 refused (retry later) until space is freed, then resume on their own within \
                 seconds, without a restart; reads are still served ({msg})"
            ));
        }
        match self {
            Self::InvalidArgument(_) => tonic::Status::invalid_argument(msg),
            Self::LimitExceeded { .. } => tonic::Status::resource_exhausted(msg),
            Self::Corrupt { .. } => tonic::Status::data_loss(msg),
            Self::Rocks(e) => match e.kind() {
                K::Busy | K::TimedOut | K::TryAgain | K::Incomplete | K::ShutdownInProgress => {
                    tonic::Status::unavailable(msg)
                }
                K::Corruption => tonic::Status::data_loss(msg),
                K::InvalidArgument | K::NotSupported => tonic::Status::internal(msg),
                _ => tonic::Status::unavailable(msg),
            },
            Self::Io(_) => tonic::Status::unavailable(msg),
            Self::Task(_) => tonic::Status::internal(msg),
        }
    }

    /// The HTTP status code for admin endpoints.
    pub(crate) fn http_status(&self) -> u16 {
        match self.to_status().code() {
            tonic::Code::InvalidArgument => 400,
            tonic::Code::ResourceExhausted => 429,
            tonic::Code::Unavailable => 503,
            _ => 500,
        }
    }
}

impl From<StorageError> for tonic::Status {
    fn from(e: StorageError) -> Self {
        e.to_status()
    }
}

/// Lower-case hex of `bytes`, for error messages.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_name_the_limit_and_map_to_resource_exhausted() {
        let e = StorageError::LimitExceeded {
            what: "select matched more than 3 series".into(),
            limit_name: "max_series_per_select",
            limit: 3,
        };
        let s = e.to_status();
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        assert!(s.message().contains("exceeds max_series_per_select (3)"), "{}", s.message());
        assert_eq!(
            StorageError::InvalidArgument("x".into()).to_status().code(),
            tonic::Code::InvalidArgument
        );
    }

    #[test]
    fn disk_full_is_retryable() {
        for kind in [std::io::ErrorKind::StorageFull, std::io::ErrorKind::QuotaExceeded] {
            let e = StorageError::Io(std::io::Error::from(kind));
            let s = e.to_status();
            assert_eq!(s.code(), tonic::Code::ResourceExhausted);
            assert!(s.message().starts_with(DISK_FULL), "{}", s.message());
            assert!(s.message().contains("retry later"), "{}", s.message());
        }
        let other = StorageError::Io(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(!other.is_no_space());
    }
}
