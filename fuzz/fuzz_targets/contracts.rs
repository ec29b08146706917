//! A contract file (Cedar clauses with Treaty's annotations), loaded
//! against the shipped example's tenants, channels, products, hosts and
//! instance.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use treaty_config::{Config, MapEnv};
use treaty_contracts::{Contracts, Entities};

fn example() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/frontier/treaty.toml");
        let env = MapEnv::new().with("TREATY_EMULATOR_URL", "http://127.0.0.1:1");
        Config::load(&path, &env).expect("the example config loads")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = example();
    let hosts: Vec<_> = config.hosts.iter().map(|h| h.host.clone()).collect();
    let classifications = ["public".to_owned(), "internal".to_owned()];
    let _ = Contracts::from_sources(
        "fuzz",
        &[("fuzz.cedar".to_owned(), text.to_owned())],
        Entities {
            tenants: &config.tenants,
            channels: &config.channels,
            products: &config.products,
            hosts: &hosts,
            instance: &config.instance,
            data_classifications: &classifications,
        },
    );
});
