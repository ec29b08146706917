//! Configuration errors: each names the key and shows a correct example.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}{message}", FileLabel(path.as_deref()))]
    Parse {
        path: Option<PathBuf>,
        message: String,
    },
    #[error("{}`{key}`: {message}\n  example: {example}", FileLabel(path.as_deref()))]
    Invalid {
        path: Option<PathBuf>,
        key: String,
        message: String,
        example: String,
    },
}

struct FileLabel<'a>(Option<&'a Path>);

impl fmt::Display for FileLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(p) => write!(f, "invalid config {}: ", p.display()),
            None => f.write_str("invalid config: "),
        }
    }
}

impl ConfigError {
    pub(crate) fn invalid(
        key: impl Into<String>,
        message: impl Into<String>,
        example: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            path: None,
            key: key.into(),
            message: message.into(),
            example: example.into(),
        }
    }

    pub(crate) fn in_file(self, file: &Path) -> Self {
        match self {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: Some(file.to_path_buf()),
                message,
            },
            ConfigError::Invalid {
                key,
                message,
                example,
                ..
            } => ConfigError::Invalid {
                path: Some(file.to_path_buf()),
                key,
                message,
                example,
            },
            other => other,
        }
    }

    /// The dotted key the error is about, when it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}
