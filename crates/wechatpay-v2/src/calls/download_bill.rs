//! `downloadbill`: a day's bill, as text; or, when there is none, an XML error.

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

/// The `downloadbill` request: `bill_date` must be a real `yyyyMMdd` date.
pub(crate) fn request(bill_date: &str, bill_type: BillType) -> Result<Params, Error> {
    parse_date(bill_date).map_err(|error| invalid("bill_date", error.to_string()))?;
    let mut params = Params::new();
    params.insert("bill_date".into(), bill_date.into());
    params.insert("bill_type".into(), bill_type.as_str().into());
    Ok(params)
}

/// Reads the answer body: the bill's text, or the error an XML answer carries. Unlike the
/// other calls, a bill is not XML and carries no signature.
pub(crate) fn read_answer(bytes: Vec<u8>) -> Result<String, Error> {
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
    String::from_utf8(bytes).map_err(|_| Error::Malformed {
        context: path,
        reason: "the bill is not UTF-8".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bill_is_text() {
        let bill = "交易时间,公众账号ID\n`2026-01-01 12:00:00,`wx1\n";
        assert_eq!(read_answer(bill.as_bytes().to_vec()).unwrap(), bill);
        assert!(matches!(
            read_answer(vec![0xff, 0xfe]),
            Err(Error::Malformed { .. })
        ));
    }

    #[test]
    fn an_xml_answer_is_an_error() {
        let no_bill = b"<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[No Bill Exist]]></return_msg><error_code><![CDATA[20002]]></error_code></xml>";
        match read_answer(no_bill.to_vec()) {
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
            read_answer(refused.to_vec()),
            Err(Error::Protocol { err_code: None, .. })
        ));
        let success = b"<?xml version=\"1.0\"?><xml><return_code>SUCCESS</return_code></xml>";
        assert!(matches!(
            read_answer(success.to_vec()),
            Err(Error::Malformed { .. })
        ));
        assert!(matches!(
            read_answer(b"<xml><a>1</a><a>2</a></xml>".to_vec()),
            Err(Error::Xml { .. })
        ));
    }

    /// The client counted eight digits where the simulator parsed a date: both now parse.
    #[test]
    fn the_bill_date_must_be_a_real_date() {
        for bad in ["20261399", "20260230", "2026-01-01", "99999999"] {
            assert!(
                matches!(
                    request(bad, BillType::All),
                    Err(Error::InvalidRequest {
                        field: "bill_date",
                        ..
                    })
                ),
                "{bad}"
            );
        }
        let params = request("20260101", BillType::Refund).unwrap();
        assert_eq!(params["bill_type"], "REFUND");
    }
}
