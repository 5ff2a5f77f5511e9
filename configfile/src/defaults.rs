//! The programs' built-in defaults as a figment provider that says so.

use figment::value::{Dict, Map};
use figment::{Metadata, Profile, Provider, Source};

/// The program's built-in defaults as a provider whose values are attributed to
/// `default value` (not to the command line, as figment's `Serialized` would have it), so
/// a value check that fails on a default says so.
pub fn defaults<T: serde::Serialize>(value: &T) -> Defaults<figment::providers::Serialized<&T>> {
    Defaults(figment::providers::Serialized::defaults(value))
}

/// See [`defaults`].
#[derive(Debug)]
pub struct Defaults<P>(P);

impl<P: Provider> Provider for Defaults<P> {
    fn metadata(&self) -> Metadata {
        Metadata::named("default value").source(Source::Custom("default value".into()))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.0.data()
    }

    fn profile(&self) -> Option<Profile> {
        self.0.profile()
    }
}
