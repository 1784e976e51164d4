//! Any bytes as a request frame (without its size prefix): classify, decode the header and
//! the body as the listener does. Must never panic or abort.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// As in the `eddy` binary: wire array counts become lazy mappings, not aborts.
#[global_allocator]
static ALLOC: eddy_kafka::LazyHugeAlloc = eddy_kafka::LazyHugeAlloc;

fuzz_target!(|data: &[u8]| {
    let _ = eddy_kafka::decode_request(bytes::Bytes::copy_from_slice(data));
});
