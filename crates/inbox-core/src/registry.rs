//! `PlatformRegistry`: the configured adapters by platform. Built once by `inbox-server` (the
//! only crate that names concrete adapters) and shared by the API and the inbound workers.

use std::collections::BTreeMap;

use crate::{DynPlatform, Error, PlatformKind, Result};

/// The adapters this gateway runs, by platform.
#[derive(Debug, Clone, Default)]
pub struct PlatformRegistry {
    platforms: BTreeMap<PlatformKind, DynPlatform>,
}

impl PlatformRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the adapter for its platform.
    pub fn register(&mut self, platform: DynPlatform) -> &mut Self {
        self.platforms.insert(platform.kind(), platform);
        self
    }

    /// The adapter for `kind`.
    ///
    /// # Errors
    /// `InvalidInput` on `platform` when this gateway has no adapter configured for it.
    pub fn get(&self, kind: PlatformKind) -> Result<&DynPlatform> {
        self.platforms.get(&kind).ok_or_else(|| {
            Error::invalid(
                "platform",
                format!("the {kind} platform is not configured on this gateway"),
            )
        })
    }

    /// Every configured adapter.
    pub fn iter(&self) -> impl Iterator<Item = &DynPlatform> {
        self.platforms.values()
    }
}
