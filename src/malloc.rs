//! glibc malloc tuning.
//!
//! - **Arenas.** glibc gives threads their own heaps ("arenas", up to 8 per core). Basin
//!   allocates on many threads (tokio workers, the blocking pool running storage calls), and
//!   memory freed in one arena is not reused by another: after an ingest, a big query grew the
//!   peak RSS of the benchmark (`scripts/bench`) from about 300 MiB to 620 MiB with the
//!   default, to 314 MiB with two arenas, at no measurable cost in speed (each thread still has
//!   its own small-object cache).
//! - **Trimming.** By default glibc hands the free top of a heap back to the kernel as soon as
//!   it exceeds 128 KiB (a threshold it then adapts). A range query over 10,000 series frees
//!   about 80 MiB of samples when it ends, and the next one faulted about 40 MiB of fresh,
//!   zeroed pages back in: every other run of `sum by (job) (rate(...))` took 190–225 ms
//!   instead of 120–150 ms, with 11,000 page faults instead of 1,800. Basin keeps up to
//!   [`TRIM_THRESHOLD`] of free heap top, keeps a second arena's heap mapped unless
//!   [`TOP_PAD`] of it would remain free (the trim threshold alone does not stop glibc from
//!   dropping a wholly free heap), and serves allocations below [`MMAP_THRESHOLD`] from the
//!   heap rather than from their own mappings, so a repeated query reuses its memory: no more
//!   fault storms, at about 35 MiB more resident memory between queries. The pad is address
//!   space, not memory: pages nobody touched are not resident.
//!
//! `MALLOC_ARENA_MAX`, `MALLOC_TRIM_THRESHOLD_`, `MALLOC_TOP_PAD_` and `MALLOC_MMAP_THRESHOLD_`
//! in the environment override the corresponding setting.

/// Arenas glibc may create.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENAS: std::ffi::c_int = 2;

/// Free memory at the top of a heap that glibc keeps rather than returns to the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: std::ffi::c_int = 128 << 20;

/// Extra heap glibc asks for whenever it grows one, and keeps when it trims.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TOP_PAD: std::ffi::c_int = 64 << 20;

/// Allocations from this size up get a mapping of their own (glibc's maximum).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: std::ffi::c_int = 32 << 20;

/// Applies the settings above, each unless the environment sets it. Call it first thing in
/// `main`, before other threads start.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune() {
    // glibc's `mallopt` parameters.
    const M_TRIM_THRESHOLD: std::ffi::c_int = -1;
    const M_TOP_PAD: std::ffi::c_int = -2;
    const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
    const M_ARENA_MAX: std::ffi::c_int = -8;
    unsafe extern "C" {
        fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
    }
    for (env, param, value) in [
        ("MALLOC_ARENA_MAX", M_ARENA_MAX, ARENAS),
        ("MALLOC_TRIM_THRESHOLD_", M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        ("MALLOC_TOP_PAD_", M_TOP_PAD, TOP_PAD),
        ("MALLOC_MMAP_THRESHOLD_", M_MMAP_THRESHOLD, MMAP_THRESHOLD),
    ] {
        if std::env::var_os(env).is_none() {
            // SAFETY: `mallopt` only changes allocator settings and is safe to call at any time.
            unsafe {
                mallopt(param, value);
            }
        }
    }
}

/// Nothing to tune with other allocators.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune() {}
