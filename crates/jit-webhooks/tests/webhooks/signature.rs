//! Signing and verifying: round trips, tampering, the time window, and each malformed header.

use jit_webhooks::{
    DEFAULT_TOLERANCE_SECS, EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, VerifyError,
    sign, verify, verify_now,
};

use crate::{BODY, NOW, SECRET};

const TOLERANCE: i64 = DEFAULT_TOLERANCE_SECS;

fn check(header: &str) -> Result<(), VerifyError> {
    verify(SECRET, header, BODY, NOW, TOLERANCE)
}

/// The `v1` value of a header made by [`sign`].
fn v1_of(header: &str) -> &str {
    header
        .split_once(",v1=")
        .expect("sign writes t=...,v1=...")
        .1
}

#[test]
fn header_names_are_the_documented_ones() {
    assert_eq!(EVENT_ID_HEADER, "Jit-Event-Id");
    assert_eq!(EVENT_TYPE_HEADER, "Jit-Event-Type");
    assert_eq!(SIGNATURE_HEADER, "Jit-Signature");
    assert_eq!(DEFAULT_TOLERANCE_SECS, 300);
}

#[test]
fn a_signed_body_verifies() {
    let header = sign(SECRET, NOW, BODY);
    assert!(header.starts_with(&format!("t={NOW},v1=")), "{header}");
    let v1 = v1_of(&header);
    assert_eq!(v1.len(), 64);
    assert!(
        v1.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    assert_eq!(check(&header), Ok(()));
    assert_eq!(verify(SECRET, &sign(SECRET, NOW, b""), b"", NOW, 0), Ok(()));
}

#[test]
fn a_changed_body_timestamp_or_secret_is_a_mismatch() {
    let header = sign(SECRET, NOW, BODY);
    let mut body = BODY.to_vec();
    body[10] ^= 0x01;
    assert_eq!(
        verify(SECRET, &header, &body, NOW, TOLERANCE),
        Err(VerifyError::Mismatch)
    );
    let mut longer = BODY.to_vec();
    longer.push(b' ');
    assert_eq!(
        verify(SECRET, &header, &longer, NOW, TOLERANCE),
        Err(VerifyError::Mismatch)
    );
    // The same signature under another timestamp: what a replay that rewrites `t` sends.
    let moved = format!("t={},v1={}", NOW + 1, v1_of(&header));
    assert_eq!(check(&moved), Err(VerifyError::Mismatch));
    // The same number written otherwise is another signed text.
    let padded = format!("t=0{NOW},v1={}", v1_of(&header));
    assert_eq!(check(&padded), Err(VerifyError::Mismatch));
    assert_eq!(
        verify(b"another secret", &header, BODY, NOW, TOLERANCE),
        Err(VerifyError::Mismatch)
    );
    let mut near = SECRET.to_vec();
    near.pop();
    assert_eq!(
        verify(&near, &header, BODY, NOW, TOLERANCE),
        Err(VerifyError::Mismatch)
    );
}

#[test]
fn timestamps_beyond_the_tolerance_are_refused_either_way() {
    let edge_old = sign(SECRET, NOW - TOLERANCE, BODY);
    assert_eq!(check(&edge_old), Ok(()));
    let edge_new = sign(SECRET, NOW + TOLERANCE, BODY);
    assert_eq!(check(&edge_new), Ok(()));
    assert_eq!(
        check(&sign(SECRET, NOW - TOLERANCE - 1, BODY)),
        Err(VerifyError::TooOld {
            age_secs: TOLERANCE + 1,
            tolerance_secs: TOLERANCE
        })
    );
    assert_eq!(
        check(&sign(SECRET, NOW + TOLERANCE + 1, BODY)),
        Err(VerifyError::TooNew {
            ahead_secs: TOLERANCE + 1,
            tolerance_secs: TOLERANCE
        })
    );
    // A day-old request replayed as it was.
    assert!(matches!(
        check(&sign(SECRET, NOW - 86_400, BODY)),
        Err(VerifyError::TooOld {
            age_secs: 86_400,
            ..
        })
    ));
    // Zero tolerance accepts only the very second.
    assert_eq!(
        verify(SECRET, &sign(SECRET, NOW, BODY), BODY, NOW, 0),
        Ok(())
    );
    assert!(verify(SECRET, &sign(SECRET, NOW - 1, BODY), BODY, NOW, 0).is_err());
    // Far-off clocks do not overflow.
    assert!(matches!(
        verify(
            SECRET,
            &sign(SECRET, i64::MIN, BODY),
            BODY,
            i64::MAX,
            TOLERANCE
        ),
        Err(VerifyError::TooOld {
            age_secs: i64::MAX,
            ..
        })
    ));
    assert!(matches!(
        verify(
            SECRET,
            &sign(SECRET, i64::MAX, BODY),
            BODY,
            i64::MIN,
            TOLERANCE
        ),
        Err(VerifyError::TooNew {
            ahead_secs: i64::MAX,
            ..
        })
    ));
}

#[test]
fn a_forged_old_header_is_a_mismatch_not_a_stale_one() {
    // The signature is checked first: only headers jit signed are called old.
    let forged = sign(b"not the secret", NOW - 86_400, BODY);
    assert_eq!(check(&forged), Err(VerifyError::Mismatch));
}

#[test]
fn one_matching_v1_among_several_is_enough() {
    let good = sign(SECRET, NOW, BODY);
    let good_v1 = v1_of(&good);
    let old_secret = sign(b"the secret before rotation", NOW, BODY);
    let other_v1 = v1_of(&old_secret);
    for header in [
        format!("t={NOW},v1={other_v1},v1={good_v1}"),
        format!("t={NOW},v1={good_v1},v1={other_v1}"),
        format!("v1={other_v1},t={NOW},v1={good_v1}"),
        // Unknown schemes are skipped, whatever they hold.
        format!("t={NOW},v0=not-hex-at-all,v1={good_v1},v2={other_v1},x=,scheme=a=b"),
        // Whitespace around items.
        format!("  t={NOW} ,\tv1={good_v1}  "),
        // Uppercase hex is the same signature.
        format!("t={NOW},v1={}", good_v1.to_ascii_uppercase()),
    ] {
        assert_eq!(check(&header), Ok(()), "{header}");
    }
    assert_eq!(
        check(&format!("t={NOW},v1={other_v1},v1={other_v1}")),
        Err(VerifyError::Mismatch)
    );
    // A signature of another scheme is not a v1 signature.
    assert_eq!(
        check(&format!("t={NOW},v0={good_v1}")),
        Err(VerifyError::NoSignature)
    );
}

#[test]
fn each_malformed_header_says_what_is_wrong() {
    let good_v1 = sign(SECRET, NOW, BODY)[format!("t={NOW},v1=").len()..].to_string();
    let cases: Vec<(String, VerifyError)> = vec![
        (String::new(), VerifyError::EmptyHeader),
        (" \t ".into(), VerifyError::EmptyHeader),
        (
            format!("t={NOW},v1={good_v1},garbage"),
            VerifyError::MalformedItem { position: 3 },
        ),
        (
            format!("=x,t={NOW},v1={good_v1}"),
            VerifyError::MalformedItem { position: 1 },
        ),
        (
            format!("t={NOW},,v1={good_v1}"),
            VerifyError::MalformedItem { position: 2 },
        ),
        (
            format!("t={NOW},v1={good_v1},"),
            VerifyError::MalformedItem { position: 3 },
        ),
        (
            format!("t={NOW};v1={good_v1}"),
            VerifyError::MalformedTimestamp,
        ),
        (format!("v1={good_v1}"), VerifyError::MissingTimestamp),
        (
            format!("T={NOW},v1={good_v1}"),
            VerifyError::MissingTimestamp,
        ),
        (
            format!("t={NOW},t={NOW},v1={good_v1}"),
            VerifyError::DuplicateTimestamp,
        ),
        (format!("t=,v1={good_v1}"), VerifyError::MalformedTimestamp),
        (
            format!("t=soon,v1={good_v1}"),
            VerifyError::MalformedTimestamp,
        ),
        (
            format!("t=+{NOW},v1={good_v1}"),
            VerifyError::MalformedTimestamp,
        ),
        (
            format!("t={NOW}.5,v1={good_v1}"),
            VerifyError::MalformedTimestamp,
        ),
        (
            format!("t=99999999999999999999,v1={good_v1}"),
            VerifyError::MalformedTimestamp,
        ),
        (format!("t={NOW}"), VerifyError::NoSignature),
        (format!("t={NOW},v0={good_v1}"), VerifyError::NoSignature),
        (
            format!("t={NOW},v1=zz{}", &good_v1[2..]),
            VerifyError::MalformedSignature { position: 2 },
        ),
        (
            format!("t={NOW},v1={}", &good_v1[2..]),
            VerifyError::MalformedSignature { position: 2 },
        ),
        (
            format!("t={NOW},v1={good_v1}00"),
            VerifyError::MalformedSignature { position: 2 },
        ),
        (
            format!("t={NOW},v1="),
            VerifyError::MalformedSignature { position: 2 },
        ),
        (
            // A good signature does not excuse a malformed one beside it.
            format!("t={NOW},v1={good_v1},v1=abc"),
            VerifyError::MalformedSignature { position: 3 },
        ),
    ];
    for (header, expected) in cases {
        assert_eq!(check(&header), Err(expected), "header {header:?}");
    }
}

#[test]
fn settings_that_would_make_verifying_meaningless_are_refused() {
    let header = sign(b"", NOW, BODY);
    assert_eq!(
        verify(b"", &header, BODY, NOW, TOLERANCE),
        Err(VerifyError::EmptySecret)
    );
    assert_eq!(
        verify(SECRET, &sign(SECRET, NOW, BODY), BODY, NOW, -1),
        Err(VerifyError::NegativeTolerance(-1))
    );
}

#[test]
fn errors_never_show_the_secret_or_the_expected_signature() {
    let secret = b"whsec_do_not_print_me";
    let expected_v1 = sign(secret, NOW, BODY)[format!("t={NOW},v1=").len()..].to_string();
    let forged = sign(b"guess", NOW, BODY);
    let refusals = [
        verify(secret, &forged, BODY, NOW, TOLERANCE),
        verify(
            secret,
            &sign(secret, NOW - 1000, BODY),
            BODY,
            NOW,
            TOLERANCE,
        ),
        verify(
            secret,
            &sign(secret, NOW + 1000, BODY),
            BODY,
            NOW,
            TOLERANCE,
        ),
        verify(secret, "t=1,v1=abc", BODY, NOW, TOLERANCE),
        verify(secret, "t=1", BODY, NOW, TOLERANCE),
        verify(secret, "", BODY, NOW, TOLERANCE),
    ];
    for refusal in refusals {
        let error = refusal.expect_err("each is refused");
        for text in [error.to_string(), format!("{error:?}")] {
            assert!(!text.contains("do_not_print_me"), "{text}");
            assert!(!text.contains(&expected_v1), "{text}");
            assert!(!text.contains(&expected_v1[..16]), "{text}");
        }
    }
    assert!(
        VerifyError::MalformedItem { position: 3 }
            .to_string()
            .contains("item 3"),
        "an error says where in the header"
    );
}

#[test]
fn verify_now_uses_the_clock_and_five_minutes() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64;
    assert_eq!(verify_now(SECRET, &sign(SECRET, now, BODY), BODY), Ok(()));
    // A minute either way is within the window.
    assert_eq!(
        verify_now(SECRET, &sign(SECRET, now - 60, BODY), BODY),
        Ok(())
    );
    assert_eq!(
        verify_now(SECRET, &sign(SECRET, now + 60, BODY), BODY),
        Ok(())
    );
    // Ten minutes either way is not (well beyond any drift while the test runs).
    assert!(matches!(
        verify_now(SECRET, &sign(SECRET, now - 600, BODY), BODY),
        Err(VerifyError::TooOld {
            tolerance_secs: 300,
            ..
        })
    ));
    assert!(matches!(
        verify_now(SECRET, &sign(SECRET, now + 600, BODY), BODY),
        Err(VerifyError::TooNew {
            tolerance_secs: 300,
            ..
        })
    ));
    assert_eq!(
        verify_now(SECRET, &sign(SECRET, now, BODY), b"{}"),
        Err(VerifyError::Mismatch)
    );
}
