//! A tlog-witness (placeholder, filled in below).
