//! The only place the CLI writes to stdout and stderr.
#![allow(clippy::print_stderr)]

use std::io::Write;

/// One line of normal output. A reader that went away (`| head`) ends the
/// output quietly instead of panicking as `println!` would.
pub fn line(text: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{text}").is_err() {
        // The pipe is closed: nothing more can be shown; exit as `head`
        // expects writers to.
        std::process::exit(0);
    }
}

/// An error, with its causes, on stderr.
pub fn error(err: &anyhow::Error) {
    eprintln!("error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}

/// A warning on stderr.
pub fn warn(text: impl std::fmt::Display) {
    eprintln!("warning: {text}");
}

/// Renders rows as an aligned text table.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let render = |cells: &mut dyn Iterator<Item = &str>, out: &mut String| {
        let mut first = true;
        for (i, cell) in cells.enumerate() {
            if !first {
                out.push_str("  ");
            }
            first = false;
            out.push_str(cell);
            let pad = widths[i].saturating_sub(cell.chars().count());
            out.extend(std::iter::repeat_n(' ', pad));
        }
        while out.ends_with(' ') {
            out.pop();
        }
        out.push('\n');
    };
    render(&mut headers.iter().copied(), &mut out);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    render(&mut rule.iter().map(String::as_str), &mut out);
    for row in rows {
        render(&mut row.iter().map(String::as_str), &mut out);
    }
    out
}
