//! Secrets Manager: the current string value of a secret, and why it could not be had.
//!
//! What a value means (the upstream token, the cursor key) and which variable named the
//! secret is the caller's to say: [`GatewayToken`](crate::gateway::GatewayToken) and
//! [`CursorKey`](crate::store::CursorKey) read through here. No error here ever carries
//! the value.

/// Why a secret's value could not be had. Says why, never what the secret holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Secrets Manager refused or could not be reached (not found, access denied, KMS).
    #[error("cannot read the secret: {0}")]
    Read(String),
    /// The secret has only a binary value; the functions' secrets are strings.
    #[error("the secret has no string value")]
    NotAString,
    /// The value is a string its user cannot use (the reason never quotes it).
    #[error("the secret's value is unusable: {0}")]
    Unusable(String),
}

/// The current string value of the secret `arn`.
pub async fn secret_string(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
) -> Result<String, SecretError> {
    let output = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| SecretError::Read(crate::port::PortFailure::of(&e).into_detail()))?;
    output.secret_string.ok_or(SecretError::NotAString)
}
