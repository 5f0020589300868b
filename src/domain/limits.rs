//! The contract's limits, configurable, and the checks that enforce them.

/// Limits on what clients may store; beyond them a request is refused and nothing written.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_name_chars: usize,
    pub max_value_bytes: usize,
    pub max_items_per_write: usize,
    pub max_attributes_per_owner: usize,
    /// Bytes of live attribute values per owner, as stored ([`super::StoredValue::stored_len`]).
    pub max_bytes_per_owner: usize,
    pub min_password_chars: usize,
    pub max_password_chars: usize,
    pub max_username_chars: usize,
    pub max_profile_field_chars: usize,
    pub max_client_field_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_name_chars: 191,
            max_value_bytes: 64 * 1024,
            max_items_per_write: 1000,
            max_attributes_per_owner: 1000,
            max_bytes_per_owner: 4 * 1024 * 1024,
            min_password_chars: 8,
            max_password_chars: 256,
            max_username_chars: 191,
            max_profile_field_chars: 256,
            max_client_field_chars: 512,
        }
    }
}

/// Printable: no control characters (tabs, newlines, NUL, DEL, C1 controls).
pub fn is_printable(text: &str) -> bool {
    !text.chars().any(char::is_control)
}
