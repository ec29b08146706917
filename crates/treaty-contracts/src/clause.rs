//! Clauses: the annotated Cedar policies of a reading, as Treaty sees them.
//!
//! A clause is one Cedar policy plus what its annotations say: its id (which
//! becomes the Cedar policy id), title, source, effective window and kind.
//! This module owns the meaning of those annotations and nothing else.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize, Serializer};
use time::Date;

/// A clause id such as `C1`: the Cedar policy id, named in every decision.
///
/// Cheap to clone: the string is shared.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClauseId(Arc<str>);

impl ClauseId {
    pub(crate) fn new(id: &str) -> Self {
        ClauseId(Arc::from(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Ids are short, unambiguous tokens: ASCII letters, digits, `-`, `_`, `.`.
    pub(crate) fn is_valid(id: &str) -> bool {
        !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    }
}

impl fmt::Display for ClauseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ClauseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::borrow::Borrow<str> for ClauseId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Permit or forbid. Forbid wins; no permit means refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    Permit,
    Forbid,
}

/// The actions of Treaty's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContractAction {
    /// May this channel sell this product to this tenant?
    Admit,
    /// May this request run on this host?
    Host,
    /// May this instance hold the stateful runtime?
    Hold,
    /// Which allowed hosts to prefer.
    Prefer,
    /// May this tenant's agents call this tool? Decided per call, not
    /// tabulated (see [`crate::Contracts::may_use`]).
    Use,
}

impl ContractAction {
    pub const ALL: [ContractAction; 5] = [
        ContractAction::Admit,
        ContractAction::Host,
        ContractAction::Hold,
        ContractAction::Prefer,
        ContractAction::Use,
    ];

    /// The Cedar action id, `Action::"<name>"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ContractAction::Admit => "admit",
            ContractAction::Host => "host",
            ContractAction::Hold => "hold",
            ContractAction::Prefer => "prefer",
            ContractAction::Use => "use",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// What a clause governs, from its action scope and `@kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClauseKind {
    /// Scoped to `admit` only: who may sell what to whom.
    Admission,
    /// Scoped to `host` (possibly with `hold`): where requests run.
    Placement,
    /// Scoped to `hold` only: where stateful runtimes are held.
    Holding,
    /// `@kind("preference")`, scoped to `prefer`: ranks, never widens.
    Preference,
    /// Scoped to `use` (and to no action above): which tools tenants'
    /// agents may call.
    Tools,
}

/// When a clause is in force: whole UTC days, both ends included.
/// `None` on either side means unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    pub from: Option<Date>,
    pub until: Option<Date>,
}

const MS_PER_DAY: i64 = 86_400_000;

fn day_start_ms(date: Date) -> i64 {
    (date.to_julian_day() as i64 - UNIX_EPOCH_JULIAN_DAY) * MS_PER_DAY
}

/// Julian day number of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;

impl Window {
    /// First instant in force (inclusive), in Unix milliseconds.
    pub fn start_ms(&self) -> Option<i64> {
        self.from.map(day_start_ms)
    }

    /// First instant no longer in force (exclusive): the start of the day
    /// after `until`.
    pub fn end_ms(&self) -> Option<i64> {
        self.until.map(|d| day_start_ms(d) + MS_PER_DAY)
    }

    /// Whether the clause is in force at `unix_ms`.
    pub fn contains(&self, unix_ms: i64) -> bool {
        self.start_ms().is_none_or(|s| s <= unix_ms) && self.end_ms().is_none_or(|e| unix_ms < e)
    }

    pub fn is_always(&self) -> bool {
        self.from.is_none() && self.until.is_none()
    }
}

pub(crate) fn format_date(date: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

pub(crate) fn parse_date(text: &str) -> Option<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text, format).ok()
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.from, self.until) {
            (None, None) => f.write_str("always"),
            (Some(from), None) => write!(f, "from {}", format_date(from)),
            (None, Some(until)) => write!(f, "until {}", format_date(until)),
            (Some(from), Some(until)) => {
                write!(f, "{} to {}", format_date(from), format_date(until))
            }
        }
    }
}

impl Serialize for Window {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Window", 2)?;
        s.serialize_field("from", &self.from.map(format_date))?;
        s.serialize_field("until", &self.until.map(format_date))?;
        s.end()
    }
}

/// One clause of a reading.
#[derive(Debug, Clone, Serialize)]
pub struct Clause {
    pub id: ClauseId,
    pub title: String,
    /// Where the clause comes from: a quote, a section reference.
    pub source: String,
    pub effect: Effect,
    pub kind: ClauseKind,
    /// The actions its scope covers, in schema order.
    pub actions: Vec<ContractAction>,
    pub window: Window,
    /// The file it was loaded from (the label given for in-memory sources).
    pub file: String,
    /// 1-based line of its `@id` annotation.
    pub line: u32,
}

impl Clause {
    pub(crate) fn applies_to(&self, action: ContractAction) -> bool {
        self.actions.contains(&action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_whole_utc_days_both_ends_included() {
        let w = Window {
            from: parse_date("2023-01-23"),
            until: parse_date("2025-10-27"),
        };
        // 2023-01-23T00:00:00Z and 2025-10-27T23:59:59.999Z are in force,
        // 2025-10-28T00:00:00Z is not.
        assert!(w.contains(1_674_432_000_000));
        assert!(!w.contains(1_674_432_000_000 - 1));
        assert!(w.contains(1_761_609_600_000 - 1));
        assert!(!w.contains(1_761_609_600_000));
        assert_eq!(w.to_string(), "2023-01-23 to 2025-10-27");
    }

    #[test]
    fn clause_ids_are_plain_tokens() {
        assert!(ClauseId::is_valid("C4m"));
        assert!(ClauseId::is_valid("R1.a"));
        assert!(!ClauseId::is_valid(""));
        assert!(!ClauseId::is_valid("C 1"));
        assert!(!ClauseId::is_valid("C\"1"));
    }
}
