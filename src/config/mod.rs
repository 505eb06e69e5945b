//! Configuration: TOML in, a typed and validated [`model::Config`] out.
//!
//! ```text
//! source.rs (file | dir | embedded) → merge.rs → raw.rs (serde mirror) → tables/ (each
//! table checked) → world.rs (files, DNS, Lua) → model.rs, in validate.rs's order;
//! locate.rs gives each error its line
//! watch.rs: reload when the files change; etcd.rs: documents from etcd, and its watch
//! ```

pub mod builder;
pub mod etcd;
pub mod locate;
pub mod merge;
pub mod model;
pub mod raw;
pub mod source;
pub mod tables;
pub mod units;
pub mod validate;
pub mod watch;
pub mod world;

pub use model::Config;
pub use validate::{build, SourceDoc};

use crate::error::StartError;

/// Load and validate the configuration from `source`, with the documents it was built from.
pub fn load(source: &source::Source) -> Result<(Config, Vec<SourceDoc>), StartError> {
    let docs = source.load()?;
    let config = build(&docs)?;
    Ok((config, docs))
}
