//! `treaty-loadgen`: the load generator behind `bench/run`, Treaty's
//! side-by-side gateway benchmark.
//!
//! It sends OpenAI-style chat completions (plain or streamed) to one URL
//! and reports latency percentiles from HDR histograms, errors by kind and
//! the achieved rate, as JSON. Two ways to drive the target:
//!
//! - **Open loop** ([`run::open_loop`]): requests leave on a fixed
//!   schedule, request *i* at `start + i / rate`, whether or not earlier
//!   ones have answered, and each latency is measured from that
//!   *scheduled* time. A gateway that stalls for 200 ms is charged 200 ms
//!   (and less, down to zero) on every request that should have been sent
//!   meanwhile, which is what its users would have seen. A closed-loop
//!   tool waits out the stall, sends nothing during it and so records one
//!   slow request among thousands of fast ones: coordinated omission.
//! - **Closed loop** ([`run::closed_loop`]): N workers, each sending its
//!   next request when the last one has finished; at N = 1 this measures
//!   the added latency of one request on an otherwise idle path.
//!
//! For streamed requests it records time to first byte of the body (the
//! first SSE event) as well as the time to the end of the stream, and
//! checks the stream ended with `data: [DONE]`.
//!
//! Why not `oha` (or `wrk`, `hey`): `oha -q RATE --latency-correction`
//! sends at a fixed rate and corrects for coordinated omission, but it
//! times whole requests: there is no time to the first *body* byte of a
//! streamed response, the figure that matters for an LLM gateway, and a
//! 200 whose stream was cut short counts as a success. `wrk` is closed loop (its
//! `wrk2` fork is open loop but not packaged here). Each of them would
//! also need its report parsed from text. This crate is about 600 lines on
//! hyper, and its numbers mean exactly what `bench/README.md` says.
//!
//! What it must never do: send anywhere but the URL it is given, or run
//! past its duration plus one request timeout.

pub mod probe;
pub mod record;
pub mod run;
pub mod schedule;
