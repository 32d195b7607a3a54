//! Board profile bytes (lossy UTF-8) → TOML parse → every rule checked. Any input must give a board or
//! an error naming the key, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use visualbyte::board::Board;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(board) = Board::parse(&text, "fuzz.toml") {
        assert!(board.validate().is_ok());
        let _ = board.matches_this_build();
    }
});
