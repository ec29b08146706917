//! Why a contract set could not be loaded.
//!
//! Every error that comes from a contract file names the file, the line and
//! the reason, because the person who reads it is editing that file.

use std::fmt;
use std::path::PathBuf;

/// One problem at one place in one contract file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SourceError {
    /// The file label: the path for [`crate::Contracts::load`], the label
    /// given to [`crate::Contracts::from_sources`] otherwise.
    pub file: String,
    /// 1-based line; 0 when Cedar gave no position.
    pub line: u32,
    /// 1-based column; 0 when Cedar gave no position.
    pub column: u32,
    /// The clause the problem is in, when known.
    pub clause: Option<String>,
    pub message: String,
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if let Some(clause) = &self.clause {
            write!(f, "clause {clause}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Why [`crate::Contracts::load`] or [`crate::Contracts::from_sources`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("cannot read contracts at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading {reading:?} has no clauses (expected one or more .cedar files)")]
    Empty { reading: String },
    /// Syntax errors, schema violations, bad annotations, duplicate ids.
    #[error("invalid contract ({} problem{}):\n{}", .0.len(), if .0.len() == 1 { "" } else { "s" }, list(.0))]
    Invalid(Vec<SourceError>),
    /// The configured entities cannot be turned into contract entities.
    #[error("contract entities: {0}")]
    Entities(String),
    /// Cedar refused something Treaty built itself; a bug, reported rather
    /// than hidden.
    #[error("internal contract engine error: {0}")]
    Internal(String),
}

fn list(errors: &[SourceError]) -> String {
    errors
        .iter()
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl ContractError {
    /// The source errors, if this is [`ContractError::Invalid`].
    pub fn source_errors(&self) -> &[SourceError] {
        match self {
            ContractError::Invalid(errors) => errors,
            _ => &[],
        }
    }
}
