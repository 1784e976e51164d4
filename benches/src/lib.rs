//! Owns nothing at run time: the benchmarks live in `benches/`, run with `cargo bench -p eddy-benches`.
