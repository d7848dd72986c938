//! Stable error codes (SPEC §2) and the error for unparsable wire strings.

use core::fmt;
use core::str::FromStr;
use serde::{Deserialize, Serialize};

/// A stable error code: the `code` of an error response and of `error:<code>` reasons. Each
/// code has one HTTP status and one retry policy, so every adapter answers the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The body is not JSON (400).
    InvalidJson,
    /// The body is JSON but not a valid request (422).
    InvalidRequest,
    /// A request that is not even well-formed HTTP (a bad method or path) (400).
    BadRequest,
    /// The body exceeds the size limit (413).
    PayloadTooLarge,
    /// Missing or wrong API key (401).
    Unauthorized,
    /// The key may not do this (403).
    Forbidden,
    /// No such route or resource (404).
    NotFound,
    /// The route exists, the method does not (405).
    MethodNotAllowed,
    /// Too many requests (429, retryable).
    RateLimited,
    /// A request's `policy_config` is invalid (422); the code `on_error` reports.
    PolicyInvalid,
    /// `policy_config` was sent but per-request policies are disabled (422).
    PolicyConfigDisabled,
    /// The budget store failed (503, retryable).
    BudgetUnavailable,
    /// The rate limiter's store failed (503, retryable).
    RateLimiterUnavailable,
    /// A store failed (503, retryable).
    StoreUnavailable,
    /// An event sink failed (503, retryable).
    SinkUnavailable,
    /// The service cannot answer now (503, retryable).
    Unavailable,
    /// An unexpected failure (500, retryable).
    Internal,
}

impl ErrorCode {
    /// Every code, in declaration order.
    const ALL: [ErrorCode; 17] = [
        ErrorCode::InvalidJson,
        ErrorCode::InvalidRequest,
        ErrorCode::BadRequest,
        ErrorCode::PayloadTooLarge,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::RateLimited,
        ErrorCode::PolicyInvalid,
        ErrorCode::PolicyConfigDisabled,
        ErrorCode::BudgetUnavailable,
        ErrorCode::RateLimiterUnavailable,
        ErrorCode::StoreUnavailable,
        ErrorCode::SinkUnavailable,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    /// The wire name, e.g. `policy_invalid`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::PolicyInvalid => "policy_invalid",
            ErrorCode::PolicyConfigDisabled => "policy_config_disabled",
            ErrorCode::BudgetUnavailable => "budget_unavailable",
            ErrorCode::RateLimiterUnavailable => "rate_limiter_unavailable",
            ErrorCode::StoreUnavailable => "store_unavailable",
            ErrorCode::SinkUnavailable => "sink_unavailable",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status of an error response with this code.
    pub const fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidJson | ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::InvalidRequest | ErrorCode::PolicyInvalid | ErrorCode::PolicyConfigDisabled => 422,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
            ErrorCode::BudgetUnavailable
            | ErrorCode::RateLimiterUnavailable
            | ErrorCode::StoreUnavailable
            | ErrorCode::SinkUnavailable
            | ErrorCode::Unavailable => 503,
        }
    }

    /// Whether the same request may succeed later (rate limits, failing dependencies,
    /// internal errors); client errors are final.
    pub const fn retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimited
                | ErrorCode::BudgetUnavailable
                | ErrorCode::RateLimiterUnavailable
                | ErrorCode::StoreUnavailable
                | ErrorCode::SinkUnavailable
                | ErrorCode::Unavailable
                | ErrorCode::Internal
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ErrorCode {
    type Err = ParseWireError;

    /// Parses a wire name (`policy_invalid`).
    fn from_str(s: &str) -> Result<ErrorCode, ParseWireError> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s).ok_or(ParseWireError { what: "error code" })
    }
}

/// A string that is not the wire form of the type it was parsed as (a [`Reason`] or an
/// [`ErrorCode`]).
///
/// [`Reason`]: crate::Reason
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseWireError {
    pub(crate) what: &'static str,
}

impl fmt::Display for ParseWireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a known {}", self.what)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ParseWireError {}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn wire_names_round_trip_and_match_serde() {
        for code in ErrorCode::ALL {
            assert_eq!(code.as_str().parse::<ErrorCode>(), Ok(code));
            assert_eq!(code.to_string(), code.as_str());
            let json = serde_json::to_value(code).unwrap_or_default();
            assert_eq!(json.as_str(), Some(code.as_str()));
        }
        assert!("policy-invalid".parse::<ErrorCode>().is_err());
    }

    #[test]
    fn statuses_and_retries() {
        assert_eq!(ErrorCode::PolicyInvalid.status(), 422);
        assert_eq!(ErrorCode::PayloadTooLarge.status(), 413);
        assert_eq!(ErrorCode::RateLimited.status(), 429);
        assert_eq!(ErrorCode::Internal.status(), 500);
        assert!(ErrorCode::BudgetUnavailable.retryable());
        assert!(!ErrorCode::InvalidRequest.retryable());
        for code in ErrorCode::ALL {
            // Every 5xx and 429 may be retried; no other 4xx may.
            assert_eq!(code.retryable(), code.status() >= 500 || code.status() == 429, "{code}");
        }
    }
}
