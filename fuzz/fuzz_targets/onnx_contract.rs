//! ONNX bytes → metadata (protobuf) → the contract JSON → parse → validate; and the same bytes read
//! directly as contract JSON. Any input must give a contract or an error, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use visualbyte::embed::contract::{contract_from_onnx_bytes, Contract};

fuzz_target!(|data: &[u8]| {
    if let Ok(contract) = contract_from_onnx_bytes(data, Path::new("fuzz.onnx")) {
        let _ = contract.validate();
        let _ = contract.to_json();
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(contract) = Contract::parse(text) {
            if contract.validate().is_ok() {
                // A contract this build accepts must survive its own round trip.
                assert_eq!(Contract::parse(&contract.to_json()).ok(), Some(contract));
            }
        }
    }
});
