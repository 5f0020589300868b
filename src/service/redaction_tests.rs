//! Every domain and service type that holds a password, UST, account token, password hash,
//! mail body or attribute value, formatted with `Debug`: the secret never shows.

use std::time::SystemTime;

use uuid::Uuid;
use zeroize::Zeroizing;

use super::*;
use crate::domain::{
    ApprovalStatus, Attribute, LoginRecord, NewAttribute, Owner, PasswordChange, Profile, Secret,
    SetAttributes, StoredAttribute, StoredValue, User, UserId, UserPatch, UserRecord, Write,
};

const SECRET: &str = "s3cret-value-42";

fn secret() -> Secret {
    Secret::from(SECRET.to_owned())
}

fn user() -> User {
    User {
        id: UserId(Uuid::nil()),
        username: "shown-user".into(),
        profile: Profile::default(),
        is_super_user: false,
        is_locked: false,
        approval_status: ApprovalStatus::Approved,
        password_must_change: false,
        password_expiry: None,
        created_at: SystemTime::UNIX_EPOCH,
        last_login_at: None,
        is_confirmed: true,
        totp_enabled: true,
    }
}

fn session() -> Session {
    Session {
        id: crate::domain::SessionId(Uuid::nil()),
        user_id: None,
        current_app: "app".into(),
        remote_addr: "192.0.2.1".into(),
        user_agent: "agent".into(),
        created_at: SystemTime::UNIX_EPOCH,
        expires_at: SystemTime::UNIX_EPOCH,
        last_renewed_at: SystemTime::UNIX_EPOCH,
    }
}

fn json_secret() -> serde_json::Value {
    serde_json::json!({ "card": SECRET })
}

fn new_attribute() -> NewAttribute {
    NewAttribute {
        name: "shown-name".into(),
        value: StoredValue::Plain(json_secret().to_string()),
        expires_at: None,
    }
}

#[test]
fn secrets_never_show_in_debug() {
    let password_change = PasswordChange {
        password_hash: SECRET.into(),
        keep_history: 3,
        password_must_change: false,
        password_expiry: None,
    };
    let printed = [
        format!(
            "{:?}",
            LoginRequest {
                username: "shown-user".into(),
                password: secret(),
                client: ClientInfo::default(),
                new_password: Some(secret()),
                totp_code: Some(secret()),
                rotate: Authentication::Missing,
            }
        ),
        format!(
            "{:?}",
            TotpEnrollment {
                secret: secret(),
                otpauth_uri: Secret::from(format!("otpauth://totp/x:y?secret={SECRET}")),
            }
        ),
        format!(
            "{:?}",
            DisableTotpRequest {
                user_id: None,
                password: secret(),
                totp_code: secret(),
            }
        ),
        format!(
            "{:?}",
            LoginOutcome {
                ust: SECRET.into(),
                session: session(),
                user: user(),
                password_expiry_warning: false,
            }
        ),
        format!(
            "{:?}",
            ChangePassword {
                user_id: None,
                old_password: secret(),
                new_password: secret(),
                must_change: None,
                password_expiry: None,
            }
        ),
        format!(
            "{:#?}",
            NewUser {
                username: "shown-user".into(),
                password: Some(secret()),
                profile: Profile::default(),
                is_super_user: true,
                is_approved: None,
                password_must_change: false,
            }
        ),
        format!(
            "{:?}",
            AttributeWrite {
                field: String::new(),
                name: "shown-name".into(),
                value: json_secret(),
                expiration: None,
                encrypt: Some(true),
            }
        ),
        format!(
            "{:?}",
            Attribute {
                name: "shown-name".into(),
                value: json_secret(),
                encrypted: true,
                created_at: SystemTime::UNIX_EPOCH,
                modified_at: SystemTime::UNIX_EPOCH,
                expires_at: None,
            }
        ),
        format!(
            "{:?}",
            StoredAttribute {
                name: "shown-name".into(),
                value: StoredValue::Plain(json_secret().to_string()),
                created_at: SystemTime::UNIX_EPOCH,
                modified_at: SystemTime::UNIX_EPOCH,
                expires_at: None,
            }
        ),
        format!(
            "{:?}",
            Write::new(
                SystemTime::UNIX_EPOCH,
                SetAttributes {
                    owner: Owner::User(UserId(Uuid::nil())),
                    items: vec![new_attribute()],
                    max_per_owner: 1,
                    max_bytes_per_owner: 1,
                },
            )
        ),
        format!(
            "{:?}",
            UserRecord {
                user: user(),
                password_hash: SECRET.into(),
            }
        ),
        format!(
            "{:?}",
            UserPatch {
                password_hash: Some(SECRET.into()),
                ..UserPatch::default()
            }
        ),
        format!(
            "{:?}",
            LoginRecord {
                verified_hash: SECRET.into(),
                new_password: Some(password_change.clone()),
            }
        ),
        format!(
            "{:?}",
            SignUpRequest {
                username: "shown-user".into(),
                password: secret(),
                profile: Profile::default(),
                client: ClientInfo::default(),
            }
        ),
        format!(
            "{:?}",
            SignUpOutcome {
                user: user(),
                confirmation_token: Some(secret()),
            }
        ),
        format!(
            "{:?}",
            crate::domain::RedeemAccountToken {
                hash: crate::crypto::hash_account_token(SECRET),
                redemption: crate::domain::Redemption::ResetPassword(password_change),
            }
        ),
        format!(
            "{:?}",
            crate::mail::Mail {
                user_id: UserId(Uuid::nil()),
                to: "shown@example.test".into(),
                subject: "shown".into(),
                body: Zeroizing::new(SECRET.to_owned()),
            }
        ),
        format!(
            "{:?}",
            crate::mail::SmtpSettings {
                url: format!("smtps://relay:{SECRET}@mail.example.test"),
                from: "shown@example.test".into(),
                queue: 1,
                max_attempts: 1,
                retry_delay: std::time::Duration::ZERO,
                timeout: std::time::Duration::ZERO,
            }
        ),
    ];
    crate::proto::redacted::assert_redacted(&printed, SECRET);
}

#[test]
fn sealed_values_show_their_key_and_size_only() {
    let sealed = StoredValue::Sealed {
        key_id: "k1".into(),
        ciphertext: SECRET.as_bytes().to_vec(),
    };
    let printed = format!("{sealed:?}");
    assert_eq!(printed, "Sealed { key_id: \"k1\", bytes: 15 }");
}
