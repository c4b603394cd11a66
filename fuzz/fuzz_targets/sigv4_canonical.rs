#![no_main]
// See agentcore_local::fuzzing::sigv4_canonical for the input format and what it checks.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| agentcore_local::fuzzing::sigv4_canonical(data));
