//! Everything about backend libraries: what a backend is called and says it is, finding and
//! choosing one, trusting it, loading it, calling it safely, describing files in a child
//! process, the store of installed versions, and updates from a signed channel.
//!
//! What lives here may use the layers below it (`description`, `progress`, `file`, `home`,
//! `exit`, `platform`), never the commands, the runtime or the configuration: what a command
//! read in config.toml comes in as arguments ([`Preferences`], a channel's URL). Within, the
//! leaves are `name` and `identity`; `protocol` holds the messages of the describing child
//! (`probe`) to its parent (`registry`).

pub mod boundary;
pub mod console;
pub mod handle;
pub mod identity;
pub mod library;
pub mod load_error;
pub mod name;
pub mod places;
pub mod probe;
pub mod protocol;
pub mod registry;
pub mod select;
pub mod store;
pub mod trust;
pub mod update;

pub use handle::{Backend, Why};
pub use identity::Described;
pub use name::BackendName;
pub use select::{Choice, Preferences};
