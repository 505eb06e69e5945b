//! One ACME order, start to end, with instant-acme: the account (stored, or created and
//! stored), an order for the certificate's names, an HTTP-01 challenge per name answered by
//! [`super::challenge`], then finalize (instant-acme makes the key and CSR) and download.
//! Every step is logged; a refusal carries the server's problem document as its reason.

use super::challenge;
use super::storage::{Storage, StorageError};
use super::store;
use super::AcmeCert;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use std::time::Duration;

/// Why an order did not give a certificate.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("the ACME server refused: {0}")]
    Acme(#[from] instant_acme::Error),
    #[error("{0}")]
    Invalid(String),
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("account credentials: {0}")]
    Credentials(#[from] serde_json::Error),
}

/// What an order gave: the chain and its private key, as PEM.
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
}

/// Tokens answered for this order (in memory and in the storage), withdrawn when it ends.
struct Answering<'a> {
    storage: &'a Storage,
    tokens: Vec<String>,
}

impl Answering<'_> {
    async fn withdraw(self) {
        for t in &self.tokens {
            challenge::remove(t);
            self.storage.remove(&challenge::rel(t)).await;
        }
    }
}

fn builder(cert: &AcmeCert) -> Result<instant_acme::AccountBuilder, instant_acme::Error> {
    match &cert.ca_file {
        Some(ca) => Account::builder_with_root(ca),
        None => Account::builder(),
    }
}

/// The account for the certificate's directory and contact: stored credentials, or a new
/// account whose credentials are stored (mode 0600).
async fn account(cert: &AcmeCert) -> Result<Account, OrderError> {
    let rel = store::account_rel(&cert.directory, cert.contact.as_deref());
    cert.storage.refresh(&rel).await?;
    if let Ok(text) = std::fs::read(cert.storage.path(&rel)) {
        let creds: AccountCredentials = serde_json::from_slice(&text)?;
        return Ok(builder(cert)?.from_credentials(creds).await?);
    }
    tracing::info!(certificate = %cert.name, directory = %cert.directory, "ACME: creating an account");
    let contact: Vec<&str> = cert.contact.iter().map(String::as_str).collect();
    let (account, creds) = builder(cert)?
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            cert.directory.clone(),
            None,
        )
        .await?;
    cert.storage
        .save(&rel, &serde_json::to_vec(&creds)?, true)
        .await?;
    Ok(account)
}

/// Order a certificate for `cert.domains`.
pub async fn order(cert: &AcmeCert) -> Result<Issued, OrderError> {
    let mut answering = Answering {
        storage: &cert.storage,
        tokens: Vec::new(),
    };
    let r = run(cert, &mut answering).await;
    answering.withdraw().await;
    r
}

async fn run(cert: &AcmeCert, answering: &mut Answering<'_>) -> Result<Issued, OrderError> {
    let account = account(cert).await?;
    let ids: Vec<Identifier> = cert
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    tracing::info!(certificate = %cert.name, domains = ?cert.domains, "ACME: ordering");
    let mut order = account.new_order(&NewOrder::new(&ids)).await?;
    let mut ready = Vec::new();
    let mut authzs = order.authorizations();
    while let Some(a) = authzs.next().await {
        let mut a = a?;
        match a.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => {
                return Err(OrderError::Invalid(format!(
                    "authorization for {} is {other:?}",
                    a.identifier()
                )))
            }
        }
        let ch = a
            .challenge(ChallengeType::Http01)
            .ok_or_else(|| OrderError::Invalid("the server offers no http-01 challenge".into()))?;
        let token = ch.token.clone();
        let key_auth = ch.key_authorization();
        challenge::put(&token, key_auth.as_str());
        cert.storage
            .save(&challenge::rel(&token), key_auth.as_str().as_bytes(), false)
            .await?;
        answering.tokens.push(token);
        ready.push(ch.url.clone());
        tracing::info!(certificate = %cert.name, domain = %ch.identifier(), "ACME: http-01 challenge ready");
    }
    // every instance sharing the storage must have the tokens before the CA looks
    tokio::time::sleep(cert.storage.propagation()).await;
    let mut authzs = order.authorizations();
    while let Some(a) = authzs.next().await {
        let mut a = a?;
        if a.status != AuthorizationStatus::Pending {
            continue;
        }
        if let Some(mut ch) = a.challenge(ChallengeType::Http01) {
            if ready.contains(&ch.url) {
                ch.set_ready().await?;
            }
        }
    }
    let retry = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .timeout(Duration::from_secs(90));
    let status = order.poll_ready(&retry).await?;
    if status != OrderStatus::Ready {
        return Err(OrderError::Invalid(why_invalid(&mut order, status).await));
    }
    tracing::info!(certificate = %cert.name, "ACME: validated; finalizing");
    let key_pem = order.finalize().await?;
    let chain_pem = order.poll_certificate(&retry).await?;
    Ok(Issued { chain_pem, key_pem })
}

/// The reason an order did not become ready: the failed challenges' problems.
async fn why_invalid(order: &mut instant_acme::Order, status: OrderStatus) -> String {
    let mut reasons = Vec::new();
    if let Some(p) = &order.state().error {
        reasons.push(p.to_string());
    }
    let mut authzs = order.authorizations();
    while let Some(Ok(a)) = authzs.next().await {
        for c in &a.challenges {
            if let Some(p) = &c.error {
                reasons.push(format!("{}: {p}", a.identifier()));
            }
        }
    }
    if reasons.is_empty() {
        format!("the order is {status:?}")
    } else {
        format!("the order is {status:?}: {}", reasons.join("; "))
    }
}
