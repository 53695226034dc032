//! Every shim API message decoder, shimctl's JSON printer and the OCI
//! process-spec parser on arbitrary bytes: see `ttrpc_fuzz::shim_messages`.
//! Byte 0 picks the message type; the rest is the message.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ttrpc_fuzz::shim_messages::run(data);
});
