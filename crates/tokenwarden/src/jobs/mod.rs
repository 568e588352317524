//! The job engines: long runs that write the organisation's data to files and survive a kill.
//!
//! - [`batch`]: many API requests from an input file, each result a line of output, resumable
//!   from its journal;
//! - [`export`]: a listing or an analytics job written to JSON Lines or CSV, in slices, resumable
//!   from its state file;
//! - [`ownership`]: who owns an output file, so two runs never write one file at once.
//!
//! This is the top floor of the library: the engines use the client, the paginators and the
//! private-file rules below them, and nothing below knows of them. The agent and the Python
//! package need only the floors below.

pub mod batch;
mod error;
pub mod export;
mod identity;
pub mod ownership;
mod report;

pub use error::{JobError, Refusal, Step};
pub use identity::Mode;
pub use report::RunReport;
