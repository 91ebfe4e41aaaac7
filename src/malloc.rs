//! glibc malloc tuning.
//!
//! glibc gives threads their own heaps ("arenas", up to 8 per core). Basin allocates on many
//! threads (tokio workers, the blocking pool running storage calls), and memory freed in one
//! arena is not reused by another: after an ingest, a big query grew the peak RSS of the
//! benchmark (`scripts/bench`) from about 300 MiB to 620 MiB with the default, to 314 MiB with
//! two arenas, at no measurable cost in speed (each thread still has its own small-object
//! cache). Setting `MALLOC_ARENA_MAX` in the environment overrides this.

/// Arenas glibc may create.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENAS: std::ffi::c_int = 2;

/// Limits glibc to [`ARENAS`] arenas unless `MALLOC_ARENA_MAX` is set. Call it first thing
/// in `main`, before other threads start.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn limit_arenas() {
    /// glibc's `M_ARENA_MAX` option of `mallopt`.
    const M_ARENA_MAX: std::ffi::c_int = -8;
    unsafe extern "C" {
        fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
    }
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    // SAFETY: `mallopt` only changes allocator settings and is safe to call at any time.
    unsafe {
        mallopt(M_ARENA_MAX, ARENAS);
    }
}

/// Nothing to tune with other allocators.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_arenas() {}
