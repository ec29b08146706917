//! The README's examples load: each Cedar block as a reading of the
//! shipped example (against the shipped schema), each TOML block either as
//! classification rules or merged into the example's config, and the
//! result checked by `treaty serve --check`, as a reader who copies them
//! would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;

use support::{treaty, write_example};

const README: &str = include_str!("../../../README.md");

/// The fenced blocks of `lang` in the README.
fn blocks(lang: &str) -> Vec<String> {
    let fence = format!("```{lang}\n");
    let mut out = Vec::new();
    let mut rest = README;
    while let Some(at) = rest.find(&fence) {
        let body = &rest[at + fence.len()..];
        let end = body.find("```").unwrap();
        out.push(body[..end].to_owned());
        rest = &body[end..];
    }
    out
}

fn check(config: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["serve", "--check", "--config", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    treaty(&args)
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `into`'s tables extended by `from`'s, recursively.
fn merge(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

#[test]
fn every_cedar_example_in_the_readme_loads_against_the_schema() {
    let cedar = blocks("cedar");
    assert!(!cedar.is_empty(), "the README shows Cedar");
    for (n, block) in cedar.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let config = write_example(dir.path());
        let reading = dir.path().join("contracts").join("readme");
        std::fs::create_dir_all(&reading).unwrap();
        std::fs::write(reading.join("readme.cedar"), block).unwrap();
        let out = check(&config, &["--reading", "readme"]);
        assert!(
            out.status.success(),
            "README Cedar block {n} does not load:\n{block}\n{}",
            text(&out)
        );
    }
}

#[test]
fn every_toml_example_in_the_readme_loads() {
    let tomls = blocks("toml");
    assert!(tomls.len() >= 3, "the README shows TOML");
    for (n, block) in tomls.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let config = write_example(dir.path());
        let fragment: toml::Table = toml::from_str(block)
            .unwrap_or_else(|e| panic!("README TOML block {n} is not TOML: {e}\n{block}"));
        if fragment.contains_key("rules") {
            // Classification rules: their own file, named by the config.
            std::fs::write(dir.path().join("rules.toml"), block).unwrap();
            let text = std::fs::read_to_string(&config).unwrap()
                + "\n[classification]\nrules_file = \"rules.toml\"\n";
            std::fs::write(&config, text).unwrap();
        } else {
            let mut table: toml::Table =
                toml::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
            merge(&mut table, fragment);
            std::fs::write(&config, toml::to_string(&table).unwrap()).unwrap();
        }
        let out = check(&config, &[]);
        assert!(
            out.status.success(),
            "README TOML block {n} does not load:\n{block}\n{}",
            text(&out)
        );
    }
}
