//! Configuration: TOML in, a typed and validated [`model::Config`] out.
//!
//! ```text
//! source.rs (file | dir | embedded) → raw.rs (serde mirror) → validate.rs → model.rs
//!                                         locate.rs gives each error its line
//! ```

pub mod locate;
pub mod model;
pub mod raw;
pub mod source;
pub mod units;
pub mod validate;

pub use model::Config;
pub use validate::{build, SourceDoc};

use crate::error::StartError;

/// Load and validate the configuration at `path` (or the embedded default for `None`).
pub fn load(path: Option<&str>) -> Result<Config, StartError> {
    let docs = match path {
        Some(p) => source::read(p)?,
        None => source::embedded(),
    };
    Ok(build(&docs)?)
}
