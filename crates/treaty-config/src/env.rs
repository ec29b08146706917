//! Where `${VAR}` references and `{ env = "..." }` secrets are looked up.

use std::collections::HashMap;

/// A source of environment variables. The process environment in
/// production; a map in tests and in the demo.
pub trait Env: Send + Sync {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// Fixed variables, falling back to the process environment when
/// `fallback` is set.
#[derive(Debug, Default, Clone)]
pub struct MapEnv {
    pub vars: HashMap<String, String>,
    pub fallback: bool,
}

impl MapEnv {
    pub fn new() -> Self {
        Self::default()
    }

    /// These variables first, then the process environment.
    pub fn over_process() -> Self {
        MapEnv {
            vars: HashMap::new(),
            fallback: true,
        }
    }

    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.vars.insert(name.to_owned(), value.to_owned());
        self
    }
}

impl Env for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.vars
            .get(name)
            .cloned()
            .or_else(|| self.fallback.then(|| std::env::var(name).ok()).flatten())
    }
}

/// Expands `${VAR}` and `${VAR:-default}` in `value`.
pub(crate) fn interpolate(value: &str, env: &dyn Env) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed '${{' in {value:?}"))?;
        let expr = &after[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (expr, None),
        };
        match (env.var(name), default) {
            (Some(v), _) if !v.is_empty() => out.push_str(&v),
            (_, Some(d)) => out.push_str(d),
            _ => return Err(format!("environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
