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
    /// Bytes of attribute values per session or user: `4MiB`, `512KiB`, plain bytes.
    #[arg(
        long,
        env = "SSOD_MAX_BYTES_PER_OWNER",
        default_value = "4MiB",
        value_parser = byte_size,
        global = true
    )]
    pub max_bytes_per_owner: usize,
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
            max_bytes_per_owner: self.max_bytes_per_owner,
            min_password_chars: self.password_min_length,
            max_password_chars: self.password_max_length,
            ..Limits::default()
        }
    }
}

/// A size in bytes: `4MiB`, `512KiB`, `4096`.
fn byte_size(text: &str) -> Result<usize, String> {
    let size: bytesize::ByteSize = text.trim().parse()?;
    usize::try_from(size.as_u64()).map_err(|_| format!("{text} is too large"))
}

#[cfg(test)]
mod tests {
    use super::byte_size;

    #[test]
    fn sizes_parse_with_binary_units_or_as_plain_bytes() {
        assert_eq!(byte_size("4MiB"), Ok(4 * 1024 * 1024));
        assert_eq!(byte_size("512KiB"), Ok(512 * 1024));
        assert_eq!(byte_size("4096"), Ok(4096));
        assert!(byte_size("lots").is_err());
    }
}
