//! A config file as an operator writes it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let env = treaty_config::MapEnv::new();
        let _ = treaty_config::Config::from_toml(text, std::path::Path::new("/nonexistent"), &env);
    }
});
