//! Brute-force throttling around a login's password check: a claim before the hash, and
//! forgetting the failures once the password proved right.

use std::time::SystemTime;

use super::{ClientInfo, ServiceError, ServiceResult, Sso};
use crate::domain::{
    AddressClaim, ClaimLogin, ForgetLoginFailures, LoginClaim, User, Username, Write,
};

impl Sso {
    /// Claims a place for one password check of `username` from the client's address, or
    /// refuses a locked-out attempt (nothing counted, nothing hashed). An admitted attempt
    /// counts as a failure until [`Self::forget_login_failures`]. An empty `remote_addr` is
    /// no address: its callers share no counter.
    pub(super) async fn claim_login(
        &self,
        username: &Username,
        client: &ClientInfo,
        now: SystemTime,
    ) -> ServiceResult<Option<AddressClaim>> {
        let address = Some(client.remote_addr.clone()).filter(|address| !address.is_empty());
        // The claim that starts a lockout is the store's to recognise: it records
        // `user.locked_out` in the claim's own write.
        let claim = ClaimLogin {
            user_key: username.key().to_owned(),
            address,
            limits: self.policy.throttle,
        };
        let claim = self
            .stores
            .throttle
            .claim_login(Write::new(now, claim).by(self.context(None, Some(client))))
            .await?;
        let (kind, until) = match claim {
            LoginClaim::Admitted { address } => return Ok(address),
            LoginClaim::Refused { kind, until } => (kind, until),
        };
        metrics::counter!("ssod_login_attempts_refused_total", "kind" => kind.as_str())
            .increment(1);
        let retry_after = until.duration_since(now).unwrap_or_default();
        tracing::info!(
            kind = kind.as_str(),
            retry_after_secs = retry_after.as_secs(),
            "login attempt refused while locked out"
        );
        // `login` records the failure and hides the reason unless the policy reveals it.
        Err(ServiceError::TooManyAttempts { retry_after })
    }

    /// The password was right, whatever else refuses the login: the user's failures and
    /// lockout history go, and the address gets back the place its claim took.
    pub(super) async fn forget_login_failures(
        &self,
        username: &Username,
        address: Option<AddressClaim>,
        now: SystemTime,
    ) -> ServiceResult<()> {
        self.stores
            .throttle
            .forget_login_failures(Write::new(
                now,
                ForgetLoginFailures {
                    user_key: username.key().to_owned(),
                    address,
                },
            ))
            .await?;
        Ok(())
    }

    /// `UnlockUser`: the user starts again with no failures and no lockout history.
    pub(super) async fn forget_user_failures(&self, user: &User) -> ServiceResult<()> {
        // A stored username always parses: it was normalised by this very rule.
        let Ok(username) = Username::parse(&user.username, usize::MAX) else {
            tracing::warn!(user_id = %user.id, "stored username does not parse; failures kept");
            return Ok(());
        };
        self.forget_login_failures(&username, None, self.clock.now())
            .await
    }
}
