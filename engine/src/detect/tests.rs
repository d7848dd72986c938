use super::{Detector, Found};
use crate::pii::PiiKind::{self, *};
use alloc::string::String;
use alloc::vec::Vec;
use alloc::{format, vec};

/// Detection with a fresh detector (tests only: real callers build one and reuse it).
fn detect(text: &str) -> Vec<Found> {
    Detector::new().detect(text)
}

/// Detected values as (kind, text) pairs.
fn found(text: &str) -> Vec<(PiiKind, &str)> {
    detect(text).into_iter().map(|f| (f.kind, text.get(f.start..f.end).unwrap_or("<not on char boundaries>"))).collect()
}

fn assert_one(text: &str, kind: PiiKind, value: &str) {
    assert_eq!(found(text), vec![(kind, value)], "in {text:?}");
}

fn assert_none(text: &str) {
    assert_eq!(found(text), vec![], "in {text:?}");
}

/// The invariants every output must satisfy.
fn assert_well_formed(text: &str, out: &[Found]) {
    let mut last_end = 0;
    for f in out {
        assert!(f.start < f.end && f.end <= text.len(), "{f:?} in {text:?}");
        assert!(f.start >= last_end, "overlap or unsorted at {f:?} in {text:?}");
        assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end), "{f:?} in {text:?}");
        last_end = f.end;
    }
}

// ---- conformance texts ----

#[test]
fn conformance_email_and_dashed_ssn() {
    let t = "User email: alice@example.com, SSN: 123-45-6789";
    assert_eq!(
        detect(t),
        vec![Found { kind: EmailAddress, start: 12, end: 29 }, Found { kind: UsSsn, start: 36, end: 47 },]
    );
}

#[test]
fn conformance_bare_ssn_with_context() {
    let t = "Export data for alice@example.com, SSN: 123456789";
    assert_eq!(found(t), vec![(EmailAddress, "alice@example.com"), (UsSsn, "123456789")]);
    assert_eq!(
        found("Audit log for alice@example.com, SSN: 123456789"),
        vec![(EmailAddress, "alice@example.com"), (UsSsn, "123456789")]
    );
}

#[test]
fn conformance_ssn_formats() {
    assert_eq!(found("ssn 123-45-6789 again 123 45 6789"), vec![(UsSsn, "123-45-6789"), (UsSsn, "123 45 6789")]);
    assert_one("my ssn 123-45-6789", UsSsn, "123-45-6789");
}

#[test]
fn conformance_cards() {
    assert_one("card 4111 1111 1111 1111", CreditCard, "4111 1111 1111 1111");
    let t = "Grüße 👋 from zoe@example.org, card 4111-1111-1111-1111";
    let out = detect(t);
    assert_well_formed(t, &out);
    assert_eq!(found(t), vec![(EmailAddress, "zoe@example.org"), (CreditCard, "4111-1111-1111-1111")]);
    assert_eq!(out.first().map(|f| f.start), t.find("zoe"));
}

#[test]
fn conformance_other_texts() {
    assert_one("Reach me at bob@corp.io", EmailAddress, "bob@corp.io");
    assert_one("print('hi') alice@example.com", EmailAddress, "alice@example.com");
    assert_one("mail carol@example.net now", EmailAddress, "carol@example.net");
}

// ---- email ----

#[test]
fn emails() {
    assert_one("write to john.doe+tag@sub.example.co.uk today", EmailAddress, "john.doe+tag@sub.example.co.uk");
    assert_one("Mail bob_smith@mail-server.example.org.", EmailAddress, "bob_smith@mail-server.example.org");
    assert_one("<alice@example.com>", EmailAddress, "alice@example.com");
    assert_one("(x.y%z@a-b.io)", EmailAddress, "x.y%z@a-b.io");
    assert_one("id 42@example.com", EmailAddress, "42@example.com");
    assert_one("from:.dot@example.com", EmailAddress, "dot@example.com");
    assert_one("mail mary.o'brien@example.ie now", EmailAddress, "mary.o'brien@example.ie");
    // Quotes around an address are punctuation, not part of the local part.
    assert_one("sent to 'alice@example.com' at noon", EmailAddress, "alice@example.com");
    assert_one("sent to 'carl.o'hara@example.com'", EmailAddress, "carl.o'hara@example.com");
}

#[test]
fn email_negatives() {
    for t in [
        "user@localhost",
        "<img src=\"logo@2x.png\">",
        "icon@3x.WEBP",
        "a@b.c",
        "@example.com",
        "foo@bar.123",
        "x@-bad.com",
        "x@bad..com",
        "trailing.@example.com",
        "@@@@",
        "me @ example.com",
    ] {
        assert_none(t);
    }
}

// ---- SSN ----

#[test]
fn ssns() {
    assert_one("SSN: 078-05-1120.", UsSsn, "078-05-1120");
    assert_one("social security number 219099999", UsSsn, "219099999");
    assert_one("Social Security: 219-09-9999", UsSsn, "219-09-9999");
    assert_one("SS# 219099999", UsSsn, "219099999");
    assert_one("ss#219099999", UsSsn, "219099999");
    assert_one("SSNs on file: 219099999", UsSsn, "219099999");
    assert_one("(123-45-6789)", UsSsn, "123-45-6789");
}

#[test]
fn ssn_negatives() {
    for t in [
        "000-12-3456",
        "666-12-3456",
        "900-12-3456",
        "999-12-3456",
        "123-00-4567",
        "123-45-0000",
        "123-45 6789",
        "123 45-6789",
        "123-45-67890",
        "1234-45-6789",
        "ID-123-45-6789",
        "SSN: 000123456",
        "SSN: 1234567890",
        "Order #123456789",
        "carelessness 123456789",
        "ssn is mentioned here but the number comes much later 123456789",
        "123456789 ssn",
        "94105-1234",
        "a123-45-6789",
    ] {
        assert_none(t);
    }
}

// ---- phones ----

#[test]
fn us_phones() {
    assert_one("call (555) 123-4567 now", PhoneNumber, "(555) 123-4567");
    assert_one("call (555)123-4567", PhoneNumber, "(555)123-4567");
    assert_one("555-123-4567", PhoneNumber, "555-123-4567");
    assert_one("555.123.4567", PhoneNumber, "555.123.4567");
    assert_one("555 123 4567", PhoneNumber, "555 123 4567");
    assert_one("Tel: +1 555 123 4567.", PhoneNumber, "+1 555 123 4567");
    assert_one("+1-555-123-4567", PhoneNumber, "+1-555-123-4567");
    assert_one("+1 (555) 123-4567", PhoneNumber, "+1 (555) 123-4567");
    assert_one("+15551234567", PhoneNumber, "+15551234567");
    assert_one("1-800-555-0199", PhoneNumber, "1-800-555-0199");
    assert_one("1 (800) 555-0199", PhoneNumber, "1 (800) 555-0199");
    assert_one("tel:555-123-4567", PhoneNumber, "555-123-4567");
}

#[test]
fn international_phones() {
    assert_one("London +44 20 7946 0958 office", PhoneNumber, "+44 20 7946 0958");
    assert_one("+4915112345678", PhoneNumber, "+4915112345678");
    assert_one("Paris: +33 1 23 45 67 89.", PhoneNumber, "+33 1 23 45 67 89");
    assert_one("+49-151-1234-5678", PhoneNumber, "+49-151-1234-5678");
    // A following number that would exceed 15 digits is not absorbed.
    assert_one("+44 20 7946 0958 2024", PhoneNumber, "+44 20 7946 0958");
    // The bracketed national trunk prefix after the country code.
    assert_one("UK office +44 (0)20 7946 0958.", PhoneNumber, "+44 (0)20 7946 0958");
    assert_one("+49 (0) 30 1234567", PhoneNumber, "+49 (0) 30 1234567");
    assert_one("+33(0)1 42 68 53 00", PhoneNumber, "+33(0)1 42 68 53 00");
}

#[test]
fn phone_negatives() {
    for t in [
        "5551234567",
        "Order 15551234567",
        "978-3-16-148410-0",
        "ISBN 0-306-40615-2",
        "ISBN 978-0-306-40615-7",
        "2024-01-15",
        "01/15/2024",
        "15/01/2024",
        "1.2.3",
        "v10.4.12",
        "$1,234.56",
        "12:30:45",
        "555-123.4567",
        "555-123-4567-89",
        "555-123-45678",
        "x555-123-4567",
        "+1 055 123 4567",
        "+1234567",
        "+44 20",
        "+44 20 7946 0958abc",
        "a+44 20 7946 0958",
        "4111 1111 1111 1112",
        "+0 123 456 789",
        "+44 (0)20",
        "+44 (1)20 7946 0958",
        "+4420 (0)7946 0958",
    ] {
        assert_none(t);
    }
}

// ---- credit cards ----

#[test]
fn credit_cards() {
    for n in [
        "4111111111111111",
        "4012888888881881",
        "4222222222222",
        "5555555555554444",
        "5105105105105100",
        "2223003122003222",
        "378282246310005",
        "371449635398431",
        "6011111111111117",
        "6011000990139424",
        "3530111333300000",
        "3566002020360505",
        "30569309025904",
        "38520000023237",
        "6200000000000005",
    ] {
        let t = format!("pay with {n}.");
        assert_one(&t, CreditCard, n);
    }
    assert_one("card 4111-1111-1111-1111", CreditCard, "4111-1111-1111-1111");
    assert_one("amex 3782 822463 10005 ok", CreditCard, "3782 822463 10005");
    assert_one("diners 3056 930902 5904", CreditCard, "3056 930902 5904");
    assert_one("visa 4222 2222 2222 2", CreditCard, "4222 2222 2222 2");
    assert_one("visa 4111 1111 1111 1111 2 items", CreditCard, "4111 1111 1111 1111");
    assert_eq!(
        found("cards 4111 1111 1111 1111 5500 0000 0000 0004"),
        vec![(CreditCard, "4111 1111 1111 1111"), (CreditCard, "5500 0000 0000 0004")]
    );
}

#[test]
fn credit_card_negatives() {
    for t in [
        "4111 1111 1111 1112",
        "4111-1111-1111-1112",
        // The tail of an IBAN that failed its checksum; 4140 7335 5610 5830 alone passes Luhn.
        "IBAN: DE08 4140 7335 5610 5830 14",
        "4111111111111112",
        // Luhn-valid but no known issuer prefix.
        "1234567812345670",
        "9780306406157",
        // Wrong length for the issuer (Amex is 15 digits).
        "3782822463100055",
        "4111 1111-1111 1111",
        "4111  1111 1111 1111",
        "41111 111 1111 1111",
        "4111-1111-1111-1111-1",
        "4111111111111111@example",
        "44111111111111111111",
    ] {
        assert!(!found(t).iter().any(|(k, _)| *k == CreditCard), "card in {t:?}");
    }
    assert_none("4111 1111 1111 1112");
}

// ---- API keys ----

#[test]
fn api_keys() {
    for k in [
        "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
        "sk-abcdefghijklmnopqrstuvwxyz123456",
        "sk-ant-api03-AbCdEf123456GhIjKl789012MnOpQr",
        "AKIAIOSFODNN7EXAMPLE",
        "ASIAIOSFODNN7EXAMPLE",
        "ghp_1234567890abcdefghijklmnopqrstuvwxyz",
        "ghs_1234567890abcdefghijklmnopqrstuvwxyz",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
        "xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "xoxp-1234567890-abcdefghij",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        "rk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "rk_test_4eC39HqLyjWDarjtT1zdp7dc",
        "glpat-Brd7xEGu0HMTNK1oVPm7",
        "npm_GFoSFc6jGm8rKhzg3OCDQG1BQO6tPzuYtbPS",
        "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",
        "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",
        "pk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI",
    ] {
        assert_one(&format!("key={k} end"), ApiKey, k);
        assert_one(&format!("\"{k}\""), ApiKey, k);
    }
}

#[test]
fn api_key_negatives() {
    for t in [
        "the task-force met",
        "sk-short",
        "sk-this-is-not-a-real-key-at-all",
        "mask-abcdefghijklmnopqrstuvwxyz123456",
        "SK-abcdefghijklmnopqrstuvwxyz123456",
        "Asia is big; so is AKIAIOSFODNN7EXAMPL",
        "AKIAIOSFODNN7EXAMPLEX",
        "akiaiosfodnn7example",
        "ghp_tooShort123",
        "ghp_1234567890abcdefghijklmnopqrstuvwxyz0",
        "github_pat_short",
        "xoxb-short",
        "xoxb-onlylettershere",
        "sk_live_short",
        "AIzaTooShort",
        "550e8400-e29b-41d4-a716-446655440000",
        "e83c5163316f89bfbde7d9ab23ca2e25604af290",
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=",
        "Bearer abcdefghijklmnopqrstuvwxyz0123456789",
        "glpat-tooShort",
        "npm_install_the_package_first",
        "hf_short",
        "msg.SG.abc",
        "SG.tooshort.tooshort",
        "the hf_ prefix and the npm_ prefix",
    ] {
        assert_none(t);
    }
}

// ---- JWT ----

const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

#[test]
fn jwts() {
    assert_one(JWT, JwtToken, JWT);
    assert_one(&format!("Authorization: Bearer {JWT}\n"), JwtToken, JWT);
    assert_one(&format!("token=\"{JWT}\""), JwtToken, JWT);
    let unsigned = "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMjM0NTY3ODkwIn0.";
    assert_one(&format!("{unsigned} x"), JwtToken, unsigned);
}

#[test]
fn jwt_negatives() {
    for t in [
        "abc.def.ghi",
        "eyJhbGciOi.notbase64!.x",
        // `{"zzz":1}`: JSON, but not a JOSE header.
        "eyJ6enoiOjF9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fw",
        // Decodes to binary, not JSON.
        "eyJzzzzzzzzzzzzzzzzz.aaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbb",
        // Signature missing on a signed token, or too short.
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc",
        "xeyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fw",
    ] {
        assert_none(t);
    }
}

// ---- IP addresses ----

#[test]
fn ipv4s() {
    assert_one("host 10.0.0.1 up", IpAddress, "10.0.0.1");
    assert_one("192.168.1.254:8080", IpAddress, "192.168.1.254");
    assert_one("255.255.255.255.", IpAddress, "255.255.255.255");
    assert_one("net 10.0.0.0/8", IpAddress, "10.0.0.0");
    assert_one("ip=0.0.0.0", IpAddress, "0.0.0.0");
    assert_eq!(
        found("range 192.168.0.0-192.168.255.255, 10.0.0.1,10.0.0.2"),
        vec![
            (IpAddress, "192.168.0.0"),
            (IpAddress, "192.168.255.255"),
            (IpAddress, "10.0.0.1"),
            (IpAddress, "10.0.0.2")
        ]
    );
}

#[test]
fn ipv6s() {
    for ip in [
        "2001:db8::1",
        "::1",
        "fe80::1ff:fe23:4567:890a",
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        "::ffff:192.0.2.1",
        "2001:db8::",
        "1:2:3:4:5:6:7:8",
    ] {
        assert_one(&format!("addr {ip} ok"), IpAddress, ip);
    }
    assert_one("[2001:db8::1]:443", IpAddress, "2001:db8::1");
    // A sentence's full stop after the last group is punctuation.
    assert_one("The server is 2001:db8:9a9a:bebd:0:4365:0:b614.", IpAddress, "2001:db8:9a9a:bebd:0:4365:0:b614");
    assert_one("on fe80::4d5d:b3a1:225d:d394. Next", IpAddress, "fe80::4d5d:b3a1:225d:d394");
    assert_one("mapped ::ffff:192.0.2.1.", IpAddress, "::ffff:192.0.2.1");
    assert_one("peer ::1: refused", IpAddress, "::1");
}

#[test]
fn ip_negatives() {
    for t in [
        "256.1.1.1",
        "1.2.3.4.5",
        "01.2.3.4",
        "1.2.3.04",
        "v1.2.3.4",
        "1.2.3",
        "12:30:45",
        "10:30",
        "std::vec::Vec",
        "Add::add",
        "a:b",
        "::",
        "00:1a:2b:3c:4d:5e",
        "1:2:3",
        "2001:db8:::1",
        "2001::db8::1",
        "12345::1",
        "1:2:3:4:5:6:7:8:9",
        "2001:db8::1g",
        "dead::beef",
        "John 3:16",
        "2001:db8::1.5",
        "Version=1.0.0.0",
        "System.Runtime, Version=4.2.0.0, Culture=neutral",
        "[assembly: AssemblyVersion(\"2.0.0.0\")]",
        "version 10.0.0.1",
    ] {
        assert_none(t);
    }
}

// ---- IBAN ----

#[test]
fn ibans() {
    for iban in [
        "DE89370400440532013000",
        "GB82WEST12345698765432",
        "FR1420041010050500013M02606",
        "ES9121000418450200051332",
        "IT60X0542811101000000123456",
        "NL91ABNA0417164300",
        "BE68539007547034",
        "CH9300762011623852957",
        "AT611904300234573201",
        "PL61109010140000071219812874",
        "DE89 3704 0044 0532 0130 00",
        "FR14 2004 1010 0505 0001 3M02 606",
        "NL91 ABNA 0417 1643 00",
    ] {
        assert_one(&format!("IBAN: {iban}, thanks"), IbanCode, iban);
    }
    assert_one("BE68 5390 0754 7034 1234", IbanCode, "BE68 5390 0754 7034");
}

#[test]
fn iban_negatives() {
    for t in [
        "DE89370400440532013001",
        "GB82WEST1234569876543",
        "DE8937040044053201300",
        "DE89 3704 0044 0532 0130 001",
        "DE893704 0044 0532 0130 00",
        "XDE89370400440532013000",
        "de89370400440532013000",
        "DE89370400440532013000x",
    ] {
        assert_none(t);
    }
}

// ---- passwords ----

#[test]
fn passwords() {
    assert_one("password: hunter2", Password, "hunter2");
    assert_one("password=hunter2", Password, "hunter2");
    assert_one("PWD=s3cr3t!", Password, "s3cr3t!");
    assert_one("passwd := abc123", Password, "abc123");
    assert_one("my_password=x1 next", Password, "x1");
    assert_one("DB-PASSWORD: ch@ngeme", Password, "ch@ngeme");
    assert_one("{\"password\": \"correct horse\"}", Password, "correct horse");
    assert_one("{\"password\":\"a\\\"b\"}", Password, "a\\\"b");
    assert_one("passphrase: 'tr0ub4dor&3'", Password, "tr0ub4dor&3");
    assert_one("My password is hunter2.", Password, "hunter2");
    assert_one("Password  =  p4ss, user=bob", Password, "p4ss");
    assert_one("db.password=s3cret", Password, "s3cret");
    assert_one("<password>s3cr3t!</password>", Password, "s3cr3t!");
    assert_one("<user>bob</user><password>a b&amp;c</password>", Password, "a b&amp;c");
    assert_one("password: $ecret1", Password, "$ecret1");
    assert_one("docker login -u bob --password s3cr3t! registry.example.com", Password, "s3cr3t!");
    assert_one("mysql --password 'a b' -h db", Password, "a b");
}

#[test]
fn password_negatives() {
    for t in [
        "password reset link",
        "mypasswords=foo",
        "password: ",
        "password=\n",
        "{\"password\": \"\"}",
        "Your password is incorrect.",
        "the password is required",
        "password_hash=abc",
        "password: <PASSWORD>",
        "\"password\": \"<PASSWORD>\"",
        "password: \"unterminated",
        "run pwd to see the directory",
        "cat /etc/passwd: root:x:0:0",
        "password: null",
        "{\"password\": true}",
        "password: ********",
        "\"password\": \"••••••\"",
        "password=xxxxxxxx",
        "password: ${DB_PASSWORD}",
        "PGPASSWORD=$DB_PASSWORD psql",
        "password: \"{{ vault_db_password }}\"",
        "password=$(cat /run/secrets/db)",
        "<password></password>",
        "<password>unclosed",
        "<password>${DB_PASSWORD}</password>",
        "--password\n",
        "--password-file /run/secrets/pw",
        "use --password to set it",
    ] {
        assert_none(t);
    }
}

// ---- mixed and generic negatives ----

#[test]
fn generic_negatives() {
    for t in [
        "550e8400-e29b-41d4-a716-446655440000",
        "e83c5163316f89bfbde7d9ab23ca2e25604af290",
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "SGVsbG8gV29ybGQhIFRoaXMgaXMgYmFzZTY0IGVuY29kZWQgdGV4dC4=",
        "Order #123456789",
        "ORD-2024-000123",
        "2024-01-15",
        "15/01/2024",
        "12:30:45",
        "$1,234.56",
        "ZIP 94105",
        "ZIP+4 94105-1234",
        "978-3-16-148410-0",
        "ISBN 0-306-40615-2",
        "version 1.2.3 and v2.10.4",
        "The quick brown fox jumps over the lazy dog.",
        "",
    ] {
        assert_none(t);
    }
}

#[test]
fn mixed_text_keeps_order() {
    let t = format!(
        "Hi, I'm bob@corp.io (SSN 219-09-9999), card 5555 5555 5555 4444, server 10.1.2.3, \
         key AKIAIOSFODNN7EXAMPLE, token {JWT}, IBAN GB82WEST12345698765432, password: pa55 bye, +44 20 7946 0958"
    );
    let kinds: Vec<PiiKind> = found(&t).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        kinds,
        vec![EmailAddress, UsSsn, CreditCard, IpAddress, ApiKey, JwtToken, IbanCode, Password, PhoneNumber]
    );
    assert_well_formed(&t, &detect(&t));
}

#[test]
fn password_value_hides_what_it_contains() {
    // The whole value is the password even if it looks like something else.
    assert_one("password=alice@example.com", Password, "alice@example.com");
}

// ---- robustness ----

#[test]
fn random_inputs_never_panic_and_stay_well_formed() {
    const ALPHABET: [&str; 40] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", " ", "-", ".", ":", "@", "+", "(", ")", "/", "_", "a", "e",
        "f", "x", "A", "K", "I", "S", "D", "E", "y", "J", "é", "👋", "ß", "\n", "\"", "=", "sk-", "password",
    ];
    let mut rng = fastrand::Rng::with_seed(0x9E37_79B9_7F4A_7C15);
    for _ in 0..4000 {
        let len = rng.u64(..) % 80;
        let mut s = String::new();
        for _ in 0..len {
            let pick = usize::try_from(rng.u64(..) % 40).unwrap_or(0);
            s.push_str(ALPHABET.get(pick).copied().unwrap_or("?"));
        }
        assert_well_formed(&s, &detect(&s));
    }
}

#[test]
fn adversarial_inputs_complete() {
    const N: usize = 200 * 1024;
    let rep = |unit: &str| unit.repeat(N / unit.len().max(1));
    let inputs = [
        rep("1"),
        rep("@"),
        rep("a@"),
        rep("a."),
        rep("a@b."),
        rep("1."),
        rep("1-"),
        rep("1 "),
        rep("12 "),
        rep("1234 "),
        rep("4111 "),
        rep(":"),
        rep("a:"),
        rep("1:"),
        rep("+"),
        rep("+1 "),
        rep("("),
        rep("(555"),
        rep("A"),
        rep("DE89"),
        rep("DE89 "),
        rep("eyJ"),
        rep("eyJabcdefghij."),
        rep("eyJhbGciOiJIUzI1NiJ9."),
        rep("aGVsbG8gd29ybGQ"),
        rep("sk-"),
        rep("sk-a"),
        rep("-sk-a1"),
        rep("xoxb-"),
        rep("AKIA"),
        rep("password="),
        rep("password: \""),
        rep("\"password\": \"a"),
        rep("password is "),
        rep("ssn "),
        rep("ssn 123456789 "),
        rep("1.2.3.4."),
        rep("::ffff:"),
        rep("fe80::"),
        rep("👋1"),
    ];
    for s in &inputs {
        assert_well_formed(s, &detect(s));
    }
}

/// Quick throughput check: `cargo test -p warden-engine --release detect -- --ignored --nocapture`.
#[cfg(feature = "std")]
#[test]
#[ignore]
fn throughput() {
    extern crate std;
    let para = "The committee reviewed the quarterly report and agreed that the new onboarding flow \
                should ship next month, pending a final review by the design team and legal counsel. \
                Several members noted that customer feedback has been broadly positive, although a few \
                asked for clearer wording in the settings page and better defaults for notifications. ";
    let pii = [
        "Contact alice@example.com for details. ",
        "Her SSN is 219-09-9999 on file. ",
        "Call (555) 123-4567 tomorrow. ",
        "Card 4111 1111 1111 1111 was charged. ",
        "Server 10.1.2.3 restarted. ",
    ];
    let mut text = String::new();
    let mut k = 0;
    while text.len() < 1 << 20 {
        text.push_str(para);
        if k % 4 == 0 {
            text.push_str(pii.get(k / 4 % pii.len()).copied().unwrap_or(""));
        }
        k += 1;
    }
    let started = std::time::Instant::now();
    let detector = Detector::new();
    std::println!("detect: automaton built in {:.0} µs", started.elapsed().as_secs_f64() * 1e6);
    let detect = |t: &str| detector.detect(t);
    let rounds = 20;
    let started = std::time::Instant::now();
    let mut hits = 0;
    for _ in 0..rounds {
        hits += detect(core::hint::black_box(&text)).len();
    }
    let secs = started.elapsed().as_secs_f64();
    let mb = (text.len() * rounds) as f64 / 1e6;
    std::println!("detect: {:.0} MB/s on {} bytes of prose ({} values per pass)", mb / secs, text.len(), hits / rounds);
    let small = text.get(..1024).unwrap_or_default();
    let started = std::time::Instant::now();
    for _ in 0..10_000 {
        core::hint::black_box(detect(core::hint::black_box(small)));
    }
    std::println!("detect: {:.2} µs per 1 KB", started.elapsed().as_secs_f64() * 1e6 / 10_000.0);
}

#[test]
fn trigger_scan_matches_bytewise_scan() {
    let mut rng = fastrand::Rng::with_seed(0x2545_F491_4F6C_DD1D);
    for _ in 0..300 {
        let len = usize::try_from(rng.u64(..) % 64).unwrap_or(0);
        // Mostly bytes around the trigger range edges, plus arbitrary high bytes.
        let pool = [b'\'', b'(', b')', b':', b';', b'?', b'@', b'A', b'0', b'9', b'+', b' ', 0xA8, 0xFF, 0xC0, b'z'];
        let bytes: Vec<u8> =
            (0..len).map(|_| pool.get(usize::try_from(rng.u64(..) % 16).unwrap_or(0)).copied().unwrap_or(0)).collect();
        for from in 0..=len {
            let naive =
                bytes.iter().enumerate().skip(from).find(|(_, &c)| super::is_trigger(c)).map_or(len, |(k, _)| k);
            assert_eq!(super::next_trigger(&bytes, from), naive, "{bytes:?} from {from}");
        }
    }
}

// ---- text written by others (issue 14) ----

#[test]
fn dashed_and_dotted_3_3_4_numbers_are_phones_whatever_the_area_code() {
    // Text in the wild ignores the NANP area-code rule; spaced and bare forms still keep it.
    for t in ["123-456-7890", "055-123-4567", "174.346.6196"] {
        assert_one(&format!("call {t} now"), PhoneNumber, t);
    }
    assert_none("ref 123 456 7890");
}

#[test]
fn us_phones_with_extensions() {
    for t in ["219.520.6224x6149", "174-346-6196x0184", "(555) 123-4567 ext. 204", "+1-555-123-4567x99"] {
        assert_one(&format!("Reach me at {t}."), PhoneNumber, t);
    }
    assert_one("555-123-4567 x12", PhoneNumber, "555-123-4567");
    assert_none("555-123-4567xyz");
}

#[test]
fn national_phone_formats_without_plus() {
    for t in [
        "041 164 9606",
        "(029) 0059-366",
        "0650 126 40 10",
        "07700 754 923",
        "03.93.92.16.85",
        "(07) 4550 6193",
        "0555-3477864",
        "030/1234 5678",
        "06-12345678",
    ] {
        assert_one(&format!("Bitte unter {t} melden"), PhoneNumber, t);
    }
    assert_one("+41 (0)81 155 45 21 reception", PhoneNumber, "+41 (0)81 155 45 21");
}

#[test]
fn compact_and_untrunked_national_numbers_need_a_phone_word() {
    assert_none("Order 07700847974 shipped");
    assert_none("ref 612 345 678");
    assert_none("ticket 2125551234");
    assert_one("Mobile: 07700847974", PhoneNumber, "07700847974");
    assert_one("mobile_number=07700847974", PhoneNumber, "07700847974");
    assert_one(r#"{"phone": "0412 345 678"}"#, PhoneNumber, "0412 345 678");
    assert_one("Teléfono: 612 345 678", PhoneNumber, "612 345 678");
    assert_one("Handy 0151 2345678", PhoneNumber, "0151 2345678");
    assert_one("call 2125551234 today", PhoneNumber, "2125551234");
    // A word merely containing a context word does not count.
    assert_none("the telex 07700847974");
    // A context word in another sentence, or too many words away, does not count either.
    assert_none("Find her cell. See ticket PO 2876911819 for details.");
    assert_none("phone the team about the order 2876911819");
}

#[test]
fn national_phone_negatives() {
    for t in [
        "05.03.2024",
        "01.02.2024 10:30",
        "0-306-40615-2",
        "ZIP 01234",
        "0.12.345",
        "00 44 20 7946",
        "price 0.99",
        "v0.12.3.4567",
        "ORD-0412-345-678",
        "0412 345 678 999 111",
    ] {
        assert_none(t);
    }
}

#[test]
fn every_card_scheme_and_length() {
    for t in [
        "676260896102",        // Maestro 12
        "502069626427",        // Maestro 12
        "180001234567899",     // JCB 15, 1800
        "213112345678904",     // JCB 15, 2131
        "3500123456789014",    // JCB 35xx
        "30569309025904",      // Diners 14
        "6759 6498 2643 8453", // Maestro 16, grouped
    ] {
        let d: Vec<u8> = t.bytes().filter(u8::is_ascii_digit).map(|c| c - b'0').collect();
        assert!(super::numbers::luhn_for_test(&d), "{t} is not Luhn-valid");
        assert_one(&format!("paid with {t} today"), CreditCard, t);
    }
    // Maestro 56–58 below 16 digits only with a card word near.
    assert_none("order 561234567890");
    assert_one("Card: 561234567890", CreditCard, "561234567890");
}

#[test]
fn escape_sequences_are_boundaries() {
    assert_one(r"line one\nalice@example.com", EmailAddress, "alice@example.com");
    assert_one(r"name:\tBob\t+44 20 7946 0958", PhoneNumber, "+44 20 7946 0958");
    assert_one(r#"\"ssn\": \"123-45-6789\""#, UsSsn, "123-45-6789");
    assert_one(r"x\n4111111111111111", CreditCard, "4111111111111111");
    // A literal backslash before the letter keeps it a letter.
    assert_one(r"dir\\nalice@example.com", EmailAddress, "nalice@example.com");
}

// ---- Unicode look-alikes (issue 10, finding 9) ----

#[test]
fn detection_sees_through_format_characters_fullwidth_forms_dashes_and_spaces() {
    // Offsets point into the original text, look-alikes included.
    assert_one(
        "card 4111\u{200B}1111\u{200B}1111\u{200B}1111 ok",
        CreditCard,
        "4111\u{200B}1111\u{200B}1111\u{200B}1111",
    );
    assert_one("SSN 123\u{2011}45\u{2011}6789.", UsSsn, "123\u{2011}45\u{2011}6789");
    assert_one("call +44\u{00A0}20\u{00A0}7946\u{00A0}0958", PhoneNumber, "+44\u{00A0}20\u{00A0}7946\u{00A0}0958");
    assert_one("mail alice\u{FF20}example.com", EmailAddress, "alice\u{FF20}example.com");
    assert_one(
        "Tel: \u{FF10}\u{FF14}\u{FF11}\u{FF12} 345 678",
        PhoneNumber,
        "\u{FF10}\u{FF14}\u{FF11}\u{FF12} 345 678",
    );
    assert_one("ip 10.0.0.1\u{FEFF}", IpAddress, "10.0.0.1");
    assert_one("SSN \u{1D7CF}\u{1D7D0}\u{1D7D1}-45-6789", UsSsn, "\u{1D7CF}\u{1D7D0}\u{1D7D1}-45-6789");
    assert_one("\u{200B}alice@example.com\u{200B}", EmailAddress, "alice@example.com");
    // Look-alikes do not make new values out of non-values.
    assert_none("order 1234\u{2013}5678 on 2024\u{2013}01\u{2013}15");
    // Other non-ASCII text is detected as it is.
    assert_one("Grüße, Jürgen — schreib an x@example.com", EmailAddress, "x@example.com");
}

#[test]
fn folded_offsets_stay_on_char_boundaries() {
    let mut rng = fastrand::Rng::with_seed(0x1234_5678_9ABC_DEF1);
    const PARTS: [&str; 14] =
        ["4", "1", " ", "\u{200B}", "\u{FF11}", "\u{2013}", "\u{00A0}", "@", "a", ".", "é", "\u{FF20}", "com", "-"];
    for _ in 0..3000 {
        let len = rng.u64(..) % 40;
        let mut s = String::new();
        for _ in 0..len {
            s.push_str(PARTS.get(usize::try_from(rng.u64(..) % 14).unwrap_or(0)).copied().unwrap_or("?"));
        }
        assert_well_formed(&s, &detect(&s));
    }
}

/// Values with the opt-in detectors on, as (kind, text) pairs.
fn found_extra(text: &str) -> Vec<(PiiKind, &str)> {
    Detector::new()
        .detect_with_extra(None, text, super::Extra::ALL)
        .into_iter()
        .map(|f| (f.kind, text.get(f.start..f.end).unwrap_or("<not on char boundaries>")))
        .collect()
}

#[test]
fn opt_in_kinds_are_off_by_default() {
    let text = "Dear Mr. Smith, ship to 742 Evergreen Terrace, Springfield, IL 62704.";
    assert_none(text);
    assert!(Detector::new().detect_in_field(Some("name"), "John Smith").is_empty());
    assert_eq!(found_extra(text), [(Person, "Smith"), (StreetAddress, "742 Evergreen Terrace, Springfield, IL 62704")]);
}

#[test]
fn person_names() {
    for (text, name) in [
        ("Dear Mr. Smith, thanks.", "Smith"),
        ("Hi Anna,\nyour order shipped.", "Anna"),
        ("My name is Wiremu Tane and I need help.", "Wiremu Tane"),
        ("Spoke with Jennifer Lopez about the renewal.", "Jennifer Lopez"),
        ("Best regards,\nKowalczyk Zbigniew", "Kowalczyk Zbigniew"),
        ("Mit freundlichen Grüßen\nJürgen Müller", "Jürgen Müller"),
        ("Patient Maria da Silva was seen today.", "Maria da Silva"),
        ("Sehr geehrte Frau Schneider,", "Schneider"),
        ("I'm Priya, the new owner.", "Priya"),
        ("customer_name=Olga Ivanova status=active", "Olga Ivanova"),
        ("{\"msg\": \"Thanks,\\nTamsin Pryce\"}", "Tamsin Pryce"),
        ("Approved by: John Q. Adams Jr.", "John Q. Adams"),
    ] {
        assert_eq!(found_extra(text), [(Person, name)], "{text}");
    }
    let d = Detector::new();
    let f = d.detect_with_extra(Some("customer_name"), "Ngozi Okafor", super::Extra::ALL);
    assert_eq!(f, [Found { kind: Person, start: 0, end: 12 }]);
}

#[test]
fn person_negatives() {
    for text in [
        "Dear Customer, your subscription renews soon.",
        "Hi team, the rollout is done.",
        "We are moving the office to San Francisco next Monday.",
        "Please join the call in Microsoft Teams or Google Meet.",
        "Bank of America and Wells Fargo reported earnings.",
        "Happy New Year from the Customer Success Team!",
        "Cordialement,\nLe Service Client",
        "Release Notes: Bug Fixes and Performance Improvements",
        "THE ACCOUNT IS LOCKED",
        "Will you call me tomorrow?",
    ] {
        assert_eq!(found_extra(text), [], "{text}");
    }
}

#[test]
fn street_addresses() {
    for (text, addr) in [
        (
            "Ship to: 1600 Pennsylvania Avenue NW, Washington, DC 20500",
            "1600 Pennsylvania Avenue NW, Washington, DC 20500",
        ),
        (
            "Send it to 17066 Heather Grove Apt. 915\nBrianafort, PR 66729.",
            "17066 Heather Grove Apt. 915\nBrianafort, PR 66729",
        ),
        ("I live at 221B Baker Street, London\nNW1 6XE", "221B Baker Street, London\nNW1 6XE"),
        ("Lieferadresse: Hauptstraße 12, 10115 Berlin", "Hauptstraße 12, 10115 Berlin"),
        ("Adresse : 8, rue Jeanne Henry\n75002 Paris", "8, rue Jeanne Henry\n75002 Paris"),
        ("Indirizzo: Via Giuseppe Verdi, 12 Appartamento 3", "Via Giuseppe Verdi, 12 Appartamento 3"),
        ("Afleveradres: Jansstraat 12, 1234 AB Utrecht", "Jansstraat 12, 1234 AB Utrecht"),
        ("Morada: Rua de Pinho, S/N", "Rua de Pinho, S/N"),
        ("Post to 6/170 Reynolds Wade, Lake Jerry, QLD, 2904", "6/170 Reynolds Wade, Lake Jerry, QLD, 2904"),
        ("{\"addr\": \"12 Main St.\\nSpringfield, IL 62704\"}", "12 Main St.\\nSpringfield, IL 62704"),
    ] {
        assert_eq!(found_extra(text), [(StreetAddress, addr)], "{text}");
    }
}

#[test]
fn street_address_negatives() {
    for text in [
        "Step 2 North Tower Entrance, then Elevator B.",
        "Room 101 is booked.",
        "We sold 250 Apple Watch units.",
        "The menu has 3 Main Courses.",
        "Version 2 Release Notes",
        "It took 5 hours on 12 March.",
    ] {
        assert_eq!(found_extra(text), [], "{text}");
    }
}

#[test]
fn opt_in_spans_never_overlap_builtin_values() {
    let text = "Contact John Smith at john.smith@example.com or 415-555-0132, 12 Main Street.";
    let out = Detector::new().detect_with_extra(None, text, super::Extra::ALL);
    assert_well_formed(text, &out);
    let kinds: Vec<PiiKind> = out.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, [Person, EmailAddress, PhoneNumber, StreetAddress]);
}
