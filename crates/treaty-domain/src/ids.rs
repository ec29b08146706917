//! Identifiers of tenants, channels, products and hosts.
//!
//! Ids appear in keys, contracts, ledger records and URLs, so they are
//! restricted to a small, unambiguous alphabet: lowercase ASCII letters,
//! digits, `-` and `_`, starting with a letter or digit, at most 64 bytes.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid id {value:?}: {reason} (ids use lowercase letters, digits, '-' and '_', e.g. \"azure-eastus\")"
)]
pub struct IdError {
    pub value: String,
    pub reason: &'static str,
}

fn check(value: &str) -> Result<(), IdError> {
    let fail = |reason| {
        Err(IdError {
            value: value.to_owned(),
            reason,
        })
    };
    if value.is_empty() {
        return fail("empty");
    }
    if value.len() > 64 {
        return fail("longer than 64 bytes");
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return fail("contains a character outside [a-z0-9_-]");
    }
    if !value.as_bytes()[0].is_ascii_alphanumeric() {
        return fail("must start with a letter or digit");
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// Cheap to clone: the string is shared.
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            pub fn new(value: &str) -> Result<Self, IdError> {
                check(value)?;
                Ok(Self(Arc::from(value)))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::new(&s).map_err(serde::de::Error::custom)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A customer: the organisation behind an API key.
    TenantId
);
id_type!(
    /// Who sold the access (first party, a cloud marketplace, ...).
    ChannelId
);
id_type!(
    /// What was sold.
    ProductId
);
id_type!(
    /// Where a request may run: one provider endpoint in one cloud region.
    HostId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_example_ids() {
        for id in [
            "azure-eastus",
            "aws-marketplace",
            "onprem-vllm",
            "dod",
            "a_b-1",
        ] {
            assert!(HostId::new(id).is_ok(), "{id}");
        }
    }

    #[test]
    fn rejects_ambiguous_ids() {
        for id in ["", "Azure", "a b", "-x", "x/y", "é", &"a".repeat(65)] {
            let err = TenantId::new(id).unwrap_err();
            assert_eq!(err.value, id);
        }
    }

    #[test]
    fn deserialize_checks_the_alphabet() {
        let ok: ChannelId = serde_json::from_str("\"direct\"").unwrap();
        assert_eq!(ok.as_str(), "direct");
        assert!(serde_json::from_str::<ChannelId>("\"Direct\"").is_err());
    }
}
