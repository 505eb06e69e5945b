//! Where ACME state lives: the storage directory, and with `kind = "etcd"` etcd as well
//! (`etcd.rs`), behind one set of operations the manager and orders use.

use super::etcd::{EtcdLock, EtcdStorage};
use super::store::{self, OrderLock};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `[storage]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storage {
    /// the directory certificates are loaded from (with etcd: its local copy)
    pub dir: PathBuf,
    pub etcd: Option<EtcdStorage>,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
}

/// A held order lock.
#[derive(Debug)]
pub enum Lock {
    File(OrderLock),
    Etcd(EtcdLock),
}

impl Lock {
    pub async fn release(self) {
        match self {
            Lock::File(l) => drop(l),
            Lock::Etcd(l) => l.release().await,
        }
    }
}

impl Storage {
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The order lock of certificate `name`; `None` while another instance holds it.
    pub async fn lock(&self, name: &str) -> Result<Option<Lock>, StorageError> {
        match &self.etcd {
            Some(e) => Ok(e.lock(name).await?.map(Lock::Etcd)),
            None => Ok(store::lock(&store::cert_dir(&self.dir, name))?.map(Lock::File)),
        }
    }

    /// Store `bytes` as `rel` (mode 0600 when `private`): the directory, and etcd.
    pub async fn save(&self, rel: &str, bytes: &[u8], private: bool) -> Result<(), StorageError> {
        store::write_atomic(&self.path(rel), bytes, private)?;
        if let Some(e) = &self.etcd {
            e.put(rel, bytes).await?;
        }
        Ok(())
    }

    /// Remove `rel` everywhere (a challenge that is over); failures are only logged.
    pub async fn remove(&self, rel: &str) {
        let _ = std::fs::remove_file(self.path(rel));
        if let Some(e) = &self.etcd {
            if let Err(err) = e.delete(rel).await {
                tracing::warn!("ACME storage: cannot delete {rel} from etcd: {err}");
            }
        }
    }

    /// Bring `rel` from etcd into the directory now (after taking the lock: another instance
    /// may have stored a newer certificate the mirror has not written yet).
    pub async fn refresh(&self, rel: &str) -> Result<(), StorageError> {
        if let Some(e) = &self.etcd {
            if let Some(v) = e.get(rel).await? {
                let private = rel.ends_with("key.pem") || rel.starts_with("accounts/");
                store::write_atomic(&self.path(rel), &v, private)?;
            }
        }
        Ok(())
    }

    /// How long other instances get to see a new challenge before the CA is told to
    /// validate (the etcd watch delivers in milliseconds; a shared directory at once).
    pub fn propagation(&self) -> Duration {
        if self.etcd.is_some() {
            Duration::from_secs(1)
        } else {
            Duration::ZERO
        }
    }
}
