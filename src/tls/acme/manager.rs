//! When to order, and making the result serve.
//!
//! Once a second the manager looks at each ACME certificate's stored files: none yet, or
//! names that no longer match the config, means order now; otherwise the renewal is due at
//! two thirds of the lifetime, brought forward by up to a twelfth of it (a random amount per
//! certificate, so instances and certificates spread out). A failed order is logged with the
//! server's reason and retried after 5 s, doubling up to an hour; the old certificate serves
//! meanwhile. When the stored certificate differs from the one the live config serves, the
//! config is reloaded (at most every 10 s), which loads it for new handshakes.

use super::order::{self, OrderError};
use super::storage::Storage;
use super::AcmeCert;
use crate::reload::Reloader;
use crate::state::Live;
use pingora::server::ShutdownWatch;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const FIRST_RETRY: Duration = Duration::from_secs(5);
const MAX_RETRY: Duration = Duration::from_secs(3600);
const RELOAD_GAP: Duration = Duration::from_secs(10);

/// What the manager knows of one certificate between looks.
struct Plan {
    /// how far before the two-thirds mark this one renews, as a fraction of a twelfth
    jitter: f64,
    failures: u32,
    retry_at: Option<Instant>,
    last_reload: Option<Instant>,
}

/// The stored certificate's dates, names and serial.
struct Stored {
    not_before: i64,
    not_after: i64,
    names: Vec<String>,
    serial: String,
}

fn stored(cert: &AcmeCert) -> Option<Stored> {
    let pem = crate::tls::pem::read(cert.cert_path().to_str()?).ok()?;
    let chain = pem.certs().ok()?;
    let (_, x) = x509_parser::parse_x509_certificate(chain.first()?.as_ref()).ok()?;
    Some(Stored {
        not_before: x.validity().not_before.timestamp(),
        not_after: x.validity().not_after.timestamp(),
        names: crate::tls::certs::names_of(&x),
        serial: crate::tls::certs::serial_of(&x),
    })
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// When `cert` is to be ordered (seconds since the epoch): now without a usable stored
/// certificate for exactly its names, else two thirds into the stored one's life, less
/// `jitter` (0..1) of a twelfth of it.
fn due(cert: &AcmeCert, s: Option<&Stored>, jitter: f64, now: i64) -> i64 {
    let Some(s) = s else { return now };
    let mut want = cert.domains.clone();
    let mut have = s.names.clone();
    want.sort();
    have.sort();
    if want != have || s.not_after <= now {
        return now;
    }
    let life = (s.not_after - s.not_before).max(1);
    s.not_before + life * 2 / 3 - (jitter * life as f64 / 12.0) as i64
}

/// Run until shutdown.
pub async fn run(live: Live, reloader: Arc<Reloader>, mut shutdown: ShutdownWatch) {
    let mut plans: HashMap<String, Plan> = HashMap::new();
    let mut mirror: Option<(Storage, tokio::task::JoinHandle<()>)> = None;
    loop {
        let state = live.load_full();
        keep_mirror(&mut mirror, &state.config);
        for cert in &state.config.acme {
            let plan = plans.entry(cert.name.clone()).or_insert_with(|| Plan {
                jitter: rand::random::<f64>(),
                failures: 0,
                retry_at: None,
                last_reload: None,
            });
            if plan.retry_at.is_some_and(|t| Instant::now() < t) {
                continue;
            }
            let now = now_secs();
            if due(cert, stored(cert).as_ref(), plan.jitter, now) <= now {
                match renew(cert, plan).await {
                    Ok(()) => {
                        plan.failures = 0;
                        plan.retry_at = None;
                    }
                    Err(e) => {
                        plan.failures += 1;
                        let wait = FIRST_RETRY
                            .saturating_mul(1 << (plan.failures - 1).min(20))
                            .min(MAX_RETRY);
                        plan.retry_at = Some(Instant::now() + wait);
                        tracing::warn!(
                            certificate = %cert.name,
                            attempt = plan.failures,
                            "ACME: order failed: {e}; retrying in {wait:?}"
                        );
                    }
                }
            }
            serve_stored(cert, plan, &state, &reloader).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Order under the lock, unless another instance holds it or renewed meanwhile.
async fn renew(cert: &AcmeCert, plan: &Plan) -> Result<(), OrderError> {
    let Some(lock) = cert
        .storage
        .lock(&cert.name)
        .await
        .map_err(OrderError::from)?
    else {
        tracing::info!(certificate = %cert.name, "ACME: another instance is ordering; waiting for it");
        return Ok(());
    };
    let r = renew_locked(cert, plan).await;
    lock.release().await;
    r
}

async fn renew_locked(cert: &AcmeCert, plan: &Plan) -> Result<(), OrderError> {
    // another instance may have stored a new certificate just before the lock was ours
    cert.storage.refresh(&cert.key_rel()).await?;
    cert.storage.refresh(&cert.cert_rel()).await?;
    let now = now_secs();
    if due(cert, stored(cert).as_ref(), plan.jitter, now) > now {
        return Ok(());
    }
    let issued = order::order(cert).await?;
    // the key first: a reader that sees the new chain finds its key
    cert.storage
        .save(&cert.key_rel(), issued.key_pem.as_bytes(), true)
        .await?;
    cert.storage
        .save(&cert.cert_rel(), issued.chain_pem.as_bytes(), false)
        .await?;
    if let Some(s) = stored(cert) {
        tracing::info!(
            certificate = %cert.name,
            serial = %s.serial,
            valid_for_s = s.not_after - now_secs(),
            "ACME: certificate issued and stored"
        );
    }
    Ok(())
}

/// With `[storage] kind = "etcd"` and ACME certificates, one task mirrors etcd into the
/// directory; a reload that changes the storage restarts it.
fn keep_mirror(
    mirror: &mut Option<(Storage, tokio::task::JoinHandle<()>)>,
    config: &crate::config::Config,
) {
    let wanted =
        (!config.acme.is_empty() && config.storage.etcd.is_some()).then(|| config.storage.clone());
    if mirror.as_ref().map(|(s, _)| s) == wanted.as_ref() {
        return;
    }
    if let Some((_, task)) = mirror.take() {
        task.abort();
    }
    if let Some(s) = wanted {
        if let Some(e) = s.etcd.clone() {
            let task = tokio::spawn(super::etcd::mirror(e, s.dir.clone()));
            *mirror = Some((s, task));
        }
    }
}

/// Reload when the stored certificate is not the one the live config serves.
async fn serve_stored(
    cert: &AcmeCert,
    plan: &mut Plan,
    state: &crate::state::State,
    reloader: &Arc<Reloader>,
) {
    let Some(s) = stored(cert) else { return };
    let live_serial = state
        .config
        .certificates
        .iter()
        .find(|c| c.name == cert.name)
        .map(|c| c.serial.as_str());
    if live_serial == Some(s.serial.as_str())
        || plan.last_reload.is_some_and(|t| t.elapsed() < RELOAD_GAP)
    {
        return;
    }
    plan.last_reload = Some(Instant::now());
    let r = reloader.clone();
    let reason = format!("ACME certificate {}", cert.name);
    let _ = tokio::task::spawn_blocking(move || r.reload(&reason)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(domains: &[&str]) -> AcmeCert {
        AcmeCert {
            name: "c".into(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            directory: String::new(),
            contact: None,
            ca_file: None,
            storage: Storage {
                dir: "/nonexistent".into(),
                etcd: None,
            },
            default: false,
        }
    }

    fn stored(names: &[&str], nb: i64, na: i64) -> Stored {
        Stored {
            not_before: nb,
            not_after: na,
            names: names.iter().map(|d| d.to_string()).collect(),
            serial: "1".into(),
        }
    }

    #[test]
    fn renewal_comes_at_two_thirds_less_jitter() {
        let c = cert(&["a.test", "b.test"]);
        let s = stored(&["b.test", "a.test"], 0, 1200);
        assert_eq!(due(&c, Some(&s), 0.0, 10), 800);
        assert_eq!(due(&c, Some(&s), 1.0, 10), 700);
        assert_eq!(due(&c, None, 0.5, 10), 10, "nothing stored: now");
        let other = stored(&["a.test"], 0, 1200);
        assert_eq!(due(&c, Some(&other), 0.5, 10), 10, "names changed: now");
        assert_eq!(due(&c, Some(&s), 0.0, 1300), 1300, "expired: now");
    }
}
