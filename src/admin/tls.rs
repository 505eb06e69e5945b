//! HTTPS on the admin listener (`[admin] tls = true`): Pingora's rustls listener with a
//! certificate resolver that asks the
//! serving config each handshake, so a reload or an ACME renewal reaches the admin too.

use crate::state::Live;
use std::sync::Arc;

pub struct LiveCerts(pub Live);

impl std::fmt::Debug for LiveCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveCerts")
    }
}

impl rustls::server::ResolvesServerCert for LiveCerts {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let state = self.0.load();
        let tls = state.config.admin_tls.as_ref()?;
        tls.store.resolve(hello)
    }
}

/// The listener's settings: Pingora's rustls acceptor (TLS 1.2 and 1.3, HTTP/1.1) over the
/// live certificates; `None` without `[admin] tls = true`.
pub fn settings(live: &Live) -> Option<pingora::listeners::tls::TlsSettings> {
    live.load().config.admin_tls.as_ref()?;
    let mut s = pingora::listeners::tls::TlsSettings::intermediate("", "").ok()?;
    s.set_cert_resolver(Arc::new(LiveCerts(live.clone())));
    s.set_alpn(pingora::protocols::ALPN::H1);
    Some(s)
}
