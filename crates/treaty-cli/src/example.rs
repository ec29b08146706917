//! The shipped Frontier example, embedded in the binary so `treaty demo`
//! runs from any directory. A test checks this list against the files in
//! `examples/frontier`, so a file added there cannot be forgotten here.

use std::path::Path;

macro_rules! example_files {
    ($($path:literal),* $(,)?) => {
        /// (path relative to `examples/frontier`, contents)
        pub const FILES: &[(&str, &str)] = &[
            $(($path, include_str!(concat!("../../../examples/frontier/", $path)))),*
        ];
    };
}

example_files!(
    "treaty.toml",
    "secrets/emulator.key",
    "secrets/aws-emulator.key",
    "secrets/webhook.key",
    "contracts/README.md",
    "contracts/reading-aws/classification.toml",
    "contracts/reading-aws/distribution.cedar",
    "contracts/reading-aws/hosting.cedar",
    "contracts/reading-aws/preferences.cedar",
    "contracts/reading-aws/residency.cedar",
    "contracts/reading-aws/tools.cedar",
    "contracts/reading-microsoft/distribution.cedar",
    "contracts/reading-microsoft/hosting.cedar",
    "contracts/reading-microsoft/preferences.cedar",
    "contracts/reading-microsoft/residency.cedar",
    "contracts/reading-microsoft/tools.cedar",
    "contracts/reading-openai/distribution.cedar",
    "contracts/reading-openai/hosting.cedar",
    "contracts/reading-openai/preferences.cedar",
    "contracts/reading-openai/residency.cedar",
    "contracts/reading-openai/tools.cedar",
);

/// The emulator key the example's hosts present.
pub fn emulator_key() -> &'static str {
    FILES
        .iter()
        .find(|(p, _)| *p == "secrets/emulator.key")
        .map(|(_, c)| c.trim())
        .unwrap_or("treaty-emulator-key")
}

/// Writes the example into `dir`; returns the config path. The files
/// under `secrets/` are written for their owner only.
pub fn write(dir: &Path) -> std::io::Result<std::path::PathBuf> {
    for (path, contents) in FILES {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if path.starts_with("secrets/") {
            crate::secret_file::write(&target, contents.as_bytes())?;
        } else {
            std::fs::write(target, contents)?;
        }
    }
    Ok(dir.join("treaty.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                // Runtime files a local `treaty serve` may leave behind.
                if !rel.ends_with(".db") && !rel.contains(".db-") && !rel.ends_with(".ledger.key") {
                    out.push(rel);
                }
            }
        }
    }

    #[test]
    fn every_example_file_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/frontier");
        let mut on_disk = Vec::new();
        walk(&root, &root, &mut on_disk);
        on_disk.sort();
        let mut embedded: Vec<String> = FILES.iter().map(|(p, _)| (*p).to_owned()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk, "update example_files! in example.rs");
    }
}
