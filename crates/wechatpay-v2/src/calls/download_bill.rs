//! `downloadbill`: a day's bill, as text (plain, or asked for as GZIP with `tar_type=GZIP`
//! and decoded here); or, when there is none, an XML error. What the text says is read by
//! [`crate::bill`].

use std::io::Read;

use super::Endpoint;
use super::validate::invalid;
use crate::fields::{Fields, decode_document};
use crate::time::parse_date;
use crate::types::BillType;
use crate::{ErrCode, Error, Params};

pub(crate) const ENDPOINT: Endpoint = Endpoint {
    path: "/pay/downloadbill",
    needs_merchant_certificate: false,
};

/// The most a GZIP bill may expand to: eight times the largest answer the transport reads,
/// so a small hostile body cannot expand without bound.
pub(crate) const MAX_BILL_TEXT_BYTES: u64 = 256 * 1024 * 1024;

/// The two bytes every GZIP stream starts with.
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];

/// How the bill travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillEncoding {
    /// Plain text (no `tar_type`).
    Plain,
    /// `tar_type=GZIP`: the bill compressed, decoded by the client.
    Gzip,
}

/// The `downloadbill` request: `bill_date` must be a real `yyyyMMdd` date.
pub(crate) fn request(
    bill_date: &str,
    bill_type: BillType,
    encoding: BillEncoding,
) -> Result<Params, Error> {
    parse_date(bill_date).map_err(|error| invalid("bill_date", error.to_string()))?;
    let mut params = Params::new();
    params.insert("bill_date".into(), bill_date.into());
    params.insert("bill_type".into(), bill_type.as_str().into());
    if encoding == BillEncoding::Gzip {
        params.insert("tar_type".into(), "GZIP".into());
    }
    Ok(params)
}

/// Reads the answer body: the bill's text (decoded from GZIP when that was asked for), or the
/// error an XML answer carries. Unlike the other calls, a bill is not XML and carries no
/// signature.
pub(crate) fn read_answer(bytes: Vec<u8>, encoding: BillEncoding) -> Result<String, Error> {
    let path = ENDPOINT.path;
    let trimmed = bytes.trim_ascii_start();
    if trimmed.starts_with(b"<xml>") || trimmed.starts_with(b"<?xml") {
        let answer = decode_document(&bytes, path)?;
        let f = Fields::new(&answer, path);
        let return_code = f.optional("return_code").unwrap_or_default();
        let message = f.optional("return_msg").unwrap_or_default();
        if return_code == "FAIL" {
            // downloadbill puts business errors in return_msg/error_code.
            return Err(match f.optional("error_code").or(f.optional("err_code")) {
                Some(code) => Error::Business {
                    endpoint: path,
                    code: ErrCode::parse(&code),
                    description: message,
                },
                None => Error::Protocol {
                    endpoint: path,
                    return_msg: message,
                    err_code: None,
                },
            });
        }
        return Err(Error::Malformed {
            context: path,
            reason: "an XML answer instead of the bill".into(),
        });
    }
    let bytes = match encoding {
        BillEncoding::Plain => bytes,
        BillEncoding::Gzip => gunzip(&bytes, MAX_BILL_TEXT_BYTES)?,
    };
    String::from_utf8(bytes).map_err(|_| Error::Malformed {
        context: path,
        reason: "the bill is not UTF-8".into(),
    })
}

/// Decodes a GZIP bill, at most `limit` bytes of it.
fn gunzip(bytes: &[u8], limit: u64) -> Result<Vec<u8>, Error> {
    let malformed = |reason: String| Error::Malformed {
        context: ENDPOINT.path,
        reason,
    };
    if !bytes.starts_with(GZIP_MAGIC) {
        return Err(malformed(
            "the bill was asked for as GZIP and the answer is not GZIP".into(),
        ));
    }
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(limit + 1)
        .read_to_end(&mut text)
        .map_err(|error| malformed(format!("the GZIP bill does not decode: {error}")))?;
    if text.len() as u64 > limit {
        return Err(malformed(format!(
            "the GZIP bill expands to more than {limit} bytes"
        )));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bill_is_text() {
        let bill = "交易时间,公众账号ID\n`2026-01-01 12:00:00,`wx1\n";
        assert_eq!(
            read_answer(bill.as_bytes().to_vec(), BillEncoding::Plain).unwrap(),
            bill
        );
        assert!(matches!(
            read_answer(vec![0xff, 0xfe], BillEncoding::Plain),
            Err(Error::Malformed { .. })
        ));
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn a_gzip_bill_is_decoded_and_must_be_gzip() {
        let bill = "交易时间,公众账号ID\r\n`2026-01-01 12:00:00,`wx1\r\n";
        assert_eq!(
            read_answer(gzip(bill.as_bytes()), BillEncoding::Gzip).unwrap(),
            bill
        );
        let (_, reason) = crate::calls::test_support::malformed(
            read_answer(bill.as_bytes().to_vec(), BillEncoding::Gzip).unwrap_err(),
        );
        assert!(reason.contains("not GZIP"), "{reason}");
        let mut truncated = gzip(bill.as_bytes());
        truncated.truncate(truncated.len() - 6);
        let (_, reason) = crate::calls::test_support::malformed(
            read_answer(truncated, BillEncoding::Gzip).unwrap_err(),
        );
        assert!(reason.contains("does not decode"), "{reason}");
        let not_utf8 = gzip(&[0xff, 0xfe]);
        assert!(matches!(
            read_answer(not_utf8, BillEncoding::Gzip),
            Err(Error::Malformed { .. })
        ));
        // An XML error stays an error in the GZIP form too.
        let no_bill = b"<xml><return_code>FAIL</return_code><return_msg>No Bill Exist</return_msg><error_code>20002</error_code></xml>";
        assert!(matches!(
            read_answer(no_bill.to_vec(), BillEncoding::Gzip),
            Err(Error::Business { .. })
        ));
    }

    #[test]
    fn a_gzip_bomb_is_refused() {
        let body = gzip(&[b'a'; 4097]);
        let (_, reason) = crate::calls::test_support::malformed(gunzip(&body, 4096).unwrap_err());
        assert!(
            reason.contains("expands to more than 4096 bytes"),
            "{reason}"
        );
        assert_eq!(gunzip(&body, 4097).unwrap().len(), 4097);
    }

    #[test]
    fn an_xml_answer_is_an_error() {
        let no_bill = b"<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[No Bill Exist]]></return_msg><error_code><![CDATA[20002]]></error_code></xml>";
        match read_answer(no_bill.to_vec(), BillEncoding::Plain) {
            Err(Error::Business {
                code, description, ..
            }) => {
                assert_eq!(code.as_str(), "20002");
                assert_eq!(description, "No Bill Exist");
            }
            other => panic!("{other:?}"),
        }
        let refused =
            b"  <xml><return_code>FAIL</return_code><return_msg>bad sign</return_msg></xml>";
        assert!(matches!(
            read_answer(refused.to_vec(), BillEncoding::Plain),
            Err(Error::Protocol { err_code: None, .. })
        ));
        let success = b"<?xml version=\"1.0\"?><xml><return_code>SUCCESS</return_code></xml>";
        assert!(matches!(
            read_answer(success.to_vec(), BillEncoding::Plain),
            Err(Error::Malformed { .. })
        ));
        assert!(matches!(
            read_answer(b"<xml><a>1</a><a>2</a></xml>".to_vec(), BillEncoding::Plain),
            Err(Error::Xml { .. })
        ));
    }

    /// The client counted eight digits where the simulator parsed a date: both now parse.
    #[test]
    fn the_bill_date_must_be_a_real_date() {
        for bad in ["20261399", "20260230", "2026-01-01", "99999999"] {
            assert!(
                matches!(
                    request(bad, BillType::All, BillEncoding::Plain),
                    Err(Error::InvalidRequest {
                        field: "bill_date",
                        ..
                    })
                ),
                "{bad}"
            );
        }
        let params = request("20260101", BillType::Refund, BillEncoding::Plain).unwrap();
        assert_eq!(params["bill_type"], "REFUND");
        assert!(!params.contains_key("tar_type"));
        let params = request("20260101", BillType::All, BillEncoding::Gzip).unwrap();
        assert_eq!(params["tar_type"], "GZIP");
    }
}
