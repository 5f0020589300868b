//! The contract's configurable limits: attribute sizes and counts, password length.

use clap::Args;

use crate::domain::Limits;

#[derive(Clone, Debug, Args)]
pub struct LimitsConfig {
    #[arg(
        long,
        env = "SSOD_MAX_ATTRIBUTE_NAME_CHARS",
        default_value_t = 191,
        global = true
    )]
    pub max_attribute_name_chars: usize,
    #[arg(
        long,
        env = "SSOD_MAX_ATTRIBUTE_VALUE_BYTES",
        default_value_t = 65536,
        global = true
    )]
    pub max_attribute_value_bytes: usize,
    #[arg(
        long,
        env = "SSOD_MAX_ATTRIBUTES_PER_WRITE",
        default_value_t = 1000,
        global = true
    )]
    pub max_attributes_per_write: usize,
    #[arg(
        long,
        env = "SSOD_MAX_ATTRIBUTES_PER_OWNER",
        default_value_t = 1000,
        global = true
    )]
    pub max_attributes_per_owner: usize,
    #[arg(
        long,
        env = "SSOD_PASSWORD_MIN_LENGTH",
        default_value_t = 8,
        global = true
    )]
    pub password_min_length: usize,
    #[arg(
        long,
        env = "SSOD_PASSWORD_MAX_LENGTH",
        default_value_t = 256,
        global = true
    )]
    pub password_max_length: usize,
}

impl LimitsConfig {
    /// The configured limits; the others (username, profile and client fields) are fixed.
    pub fn policy(&self) -> Limits {
        Limits {
            max_name_chars: self.max_attribute_name_chars,
            max_value_bytes: self.max_attribute_value_bytes,
            max_items_per_write: self.max_attributes_per_write,
            max_attributes_per_owner: self.max_attributes_per_owner,
            min_password_chars: self.password_min_length,
            max_password_chars: self.password_max_length,
            ..Limits::default()
        }
    }
}
