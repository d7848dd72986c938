//! PII types: the closed set of built-in kinds plus policy-declared custom types.

use alloc::string::String;
use core::fmt;
use serde::{Deserialize, Serialize};

/// A built-in PII kind (SPEC §4). Wire names are the snake_case type names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    /// `user@example.com`
    EmailAddress,
    /// US social security number.
    UsSsn,
    /// US or international phone number.
    PhoneNumber,
    /// Luhn-valid payment card number.
    CreditCard,
    /// Provider API key (`sk-`, `AKIA`, `ghp_`, ...).
    ApiKey,
    /// JSON Web Token.
    JwtToken,
    /// IPv4 or IPv6 address.
    IpAddress,
    /// IBAN with a valid mod-97 checksum.
    IbanCode,
    /// The value of a `password: x` style assignment.
    Password,
    /// A person's name (opt-in: a policy's `detect_extra`).
    Person,
    /// A street address (opt-in: a policy's `detect_extra`).
    StreetAddress,
}

impl PiiKind {
    /// Every built-in kind, in a stable order (the opt-in kinds last).
    pub const ALL: [PiiKind; 11] = [
        PiiKind::EmailAddress,
        PiiKind::UsSsn,
        PiiKind::PhoneNumber,
        PiiKind::CreditCard,
        PiiKind::ApiKey,
        PiiKind::JwtToken,
        PiiKind::IpAddress,
        PiiKind::IbanCode,
        PiiKind::Password,
        PiiKind::Person,
        PiiKind::StreetAddress,
    ];

    /// The kinds detected only when a policy asks for them (`detect_extra`): finding them costs
    /// more and they are less certain, so deployed decisions do not change under anyone.
    pub const OPT_IN: [PiiKind; 2] = [PiiKind::Person, PiiKind::StreetAddress];

    /// True for the kinds of [`OPT_IN`](Self::OPT_IN).
    pub const fn is_opt_in(self) -> bool {
        matches!(self, PiiKind::Person | PiiKind::StreetAddress)
    }

    /// The wire name, e.g. `us_ssn`.
    pub const fn name(self) -> &'static str {
        match self {
            PiiKind::EmailAddress => "email_address",
            PiiKind::UsSsn => "us_ssn",
            PiiKind::PhoneNumber => "phone_number",
            PiiKind::CreditCard => "credit_card",
            PiiKind::ApiKey => "api_key",
            PiiKind::JwtToken => "jwt_token",
            PiiKind::IpAddress => "ip_address",
            PiiKind::IbanCode => "iban_code",
            PiiKind::Password => "password",
            PiiKind::Person => "person",
            PiiKind::StreetAddress => "street_address",
        }
    }

    /// The redaction placeholder, e.g. `<USER_SSN>`.
    pub const fn placeholder(self) -> &'static str {
        match self {
            PiiKind::EmailAddress => "<USER_EMAIL>",
            PiiKind::UsSsn => "<USER_SSN>",
            PiiKind::PhoneNumber => "<USER_PHONE>",
            PiiKind::CreditCard => "<CREDIT_CARD>",
            PiiKind::ApiKey => "<API_KEY>",
            PiiKind::JwtToken => "<JWT_TOKEN>",
            PiiKind::IpAddress => "<IP_ADDRESS>",
            PiiKind::IbanCode => "<IBAN_CODE>",
            PiiKind::Password => "<PASSWORD>",
            PiiKind::Person => "<PERSON>",
            PiiKind::StreetAddress => "<ADDRESS>",
        }
    }

    /// Looks a kind up by its wire name.
    pub fn from_name(name: &str) -> Option<PiiKind> {
        PiiKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for PiiKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A PII type as policies and reasons name it: a built-in kind or a custom type declared in
/// the policy's `custom_pii`. Displays as the bare type name (`us_ssn`); the policy key form
/// is `PII:<name>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PiiType {
    /// A built-in kind.
    Builtin(PiiKind),
    /// A custom type from the policy (name validated: not a built-in name).
    Custom(String),
}

impl PiiType {
    /// The bare type name.
    pub fn name(&self) -> &str {
        match self {
            PiiType::Builtin(k) => k.name(),
            PiiType::Custom(n) => n,
        }
    }

    /// The type a bare name denotes outside any policy (in a reason): the built-in kind of
    /// that name, else a custom type when the name is a valid custom type name.
    pub(crate) fn from_name(name: &str) -> Option<PiiType> {
        match PiiKind::from_name(name) {
            Some(k) => Some(PiiType::Builtin(k)),
            None => valid_custom_name(name).then(|| PiiType::Custom(String::from(name))),
        }
    }
}

/// Whether `name` may name a custom type: 1-64 characters of `a-z`, `0-9` and `_`.
pub(crate) fn valid_custom_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl fmt::Display for PiiType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for PiiType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}
