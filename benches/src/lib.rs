//! Helpers the benchmarks in `benches/` share; the benchmarks themselves run with
//! `cargo bench -p eddy-benches`.

/// A fresh scratch directory for one benchmark run, under `EDDY_BENCH_DIR` (default: the
/// system's temp dir), removed when dropped.
pub fn scratch_dir() -> std::io::Result<tempfile::TempDir> {
    let base = std::env::var_os("EDDY_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    tempfile::tempdir_in(base)
}

/// The median of `v` (the mean of the middle two for an even count; NaN when empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}
