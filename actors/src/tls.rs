//! The process's TLS crypto provider. rustls panics on first use when it
//! cannot pick one from its features, so every client builder calls
//! [`install_provider`] first (it is idempotent and cheap).

use std::sync::Once;

static INSTALL: Once = Once::new();

/// Installs rustls's `ring` provider for the process, once.
pub fn install_provider() {
    INSTALL.call_once(|| {
        // Err means another provider was installed first: that one is used.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
