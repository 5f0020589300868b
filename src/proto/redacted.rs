//! What a secret field of a generated message shows in `Debug` (see `build.rs`), and the test
//! that no message prints one.

/// Stands in for a secret field's value.
pub(super) struct Redacted;

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Test helper: each text shows `[redacted]` and not `secret`.
#[cfg(test)]
pub(crate) fn assert_redacted(printed: &[String], secret: &str) {
    for text in printed {
        assert!(!text.contains(secret), "a secret printed: {text}");
        assert!(text.contains("[redacted]"), "{text}");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::{super::*, assert_redacted};

    const SECRET: &str = "s3cret-value-42";

    fn secret() -> String {
        SECRET.to_owned()
    }

    fn value() -> Option<prost_types::Value> {
        Some(prost_types::Value {
            kind: Some(prost_types::value::Kind::StringValue(secret())),
        })
    }

    fn attribute() -> Attribute {
        Attribute {
            name: "shown-name".into(),
            value: value(),
            encrypted: true,
            ..Attribute::default()
        }
    }

    fn write() -> AttributeWrite {
        AttributeWrite {
            name: "shown-name".into(),
            value: value(),
            ..AttributeWrite::default()
        }
    }

    #[test]
    fn messages_with_secrets_print_them_redacted() {
        let printed = [
            format!(
                "{:?}",
                LoginRequest {
                    username: "shown-user".into(),
                    password: secret(),
                    new_password: Some(secret()),
                    totp_code: Some(secret()),
                    ..LoginRequest::default()
                }
            ),
            format!(
                "{:?}",
                LoginResponse {
                    ust: secret(),
                    ..LoginResponse::default()
                }
            ),
            format!(
                "{:?}",
                LogoutResponse {
                    guest_ust: secret()
                }
            ),
            format!(
                "{:#?}",
                CreateUserRequest {
                    username: "shown-user".into(),
                    password: Some(secret()),
                    ..CreateUserRequest::default()
                }
            ),
            format!(
                "{:?}",
                CreateUserResponse {
                    generated_password: secret(),
                    ..CreateUserResponse::default()
                }
            ),
            format!(
                "{:?}",
                ChangePasswordRequest {
                    old_password: secret(),
                    new_password: secret(),
                    ..ChangePasswordRequest::default()
                }
            ),
            format!(
                "{:?}",
                CreateSessionResponse {
                    ust: secret(),
                    ..CreateSessionResponse::default()
                }
            ),
            format!(
                "{:?}",
                GetSessionRequest {
                    target_ust: secret(),
                    current_app: "shown-app".into(),
                    ..GetSessionRequest::default()
                }
            ),
            format!(
                "{:?}",
                VerifySessionRequest {
                    target_ust: secret(),
                    ..VerifySessionRequest::default()
                }
            ),
            format!("{:?}", attribute()),
            format!(
                "{:?}",
                SetAttributeRequest {
                    name: "shown-name".into(),
                    value: value(),
                    ..SetAttributeRequest::default()
                }
            ),
            format!("{:?}", write()),
            format!(
                "{:?}",
                SetAttributesRequest {
                    attributes: vec![write()],
                    ..SetAttributesRequest::default()
                }
            ),
            format!(
                "{:?}",
                SetAttributeResponse {
                    attribute: Some(attribute()),
                }
            ),
            format!(
                "{:?}",
                SetAttributesResponse {
                    attributes: vec![attribute()],
                }
            ),
            format!(
                "{:?}",
                GetAttributeResponse {
                    attribute: Some(attribute()),
                }
            ),
            format!(
                "{:?}",
                GetAttributesResponse {
                    attributes: HashMap::from([("shown-name".into(), attribute())]),
                }
            ),
            format!(
                "{:?}",
                SetAttributeExpiryResponse {
                    attribute: Some(attribute()),
                }
            ),
        ];
        assert_redacted(&printed, SECRET);
    }

    #[test]
    fn other_fields_still_print() {
        let printed = format!(
            "{:?}",
            LoginRequest {
                username: "shown-user".into(),
                current_app: "shown-app".into(),
                password: secret(),
                ..LoginRequest::default()
            }
        );
        assert!(printed.starts_with("LoginRequest {"), "{printed}");
        for shown in ["username: \"shown-user\"", "current_app: \"shown-app\""] {
            assert!(printed.contains(shown), "{shown} missing from {printed}");
        }
        let printed = format!("{:?}", attribute());
        assert!(printed.contains("encrypted: true"), "{printed}");
        assert!(printed.contains("\"shown-name\""), "{printed}");
    }
}
