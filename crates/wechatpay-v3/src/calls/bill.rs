//! Bills: the trade bill (`GET /v3/bill/tradebill`) and the fund-flow bill
//! (`GET /v3/bill/fundflowbill`) answer with a [`BillDownload`]: a `download_url`, fetched
//! with a signed GET, and the SHA1 of the file. The file itself is not signed: its SHA1 is
//! checked (in constant time) against the announced one, then, when GZIP was asked for, it
//! is decompressed (with a cap against decompression bombs).

use std::io::Read;

use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::Value;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use super::{Call, encode_component};
use crate::Error;
use crate::json::{malformed, read};
use crate::time::format_bill_date;
use crate::types::{AccountType, BillType};

/// The trade bill's path.
pub const TRADE_BILL_ENDPOINT: &str = "/v3/bill/tradebill";
/// The fund-flow bill's path.
pub const FUND_FLOW_BILL_ENDPOINT: &str = "/v3/bill/fundflowbill";
/// The context errors about a downloaded file are reported under.
pub const DOWNLOAD_ENDPOINT: &str = "/v3/billdownload/file";

/// The largest bill accepted once decompressed.
pub const MAX_BILL_BYTES: u64 = 256 * 1024 * 1024;

/// A trade bill request: one Beijing day's transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TradeBillRequest {
    /// The day.
    pub bill_date: NaiveDate,
    /// Which transactions.
    pub bill_type: BillType,
    /// Ask for the file GZIP-compressed (`tar_type=GZIP`).
    pub gzip: bool,
}

impl TradeBillRequest {
    pub(crate) fn call(&self) -> Call {
        let mut path = format!(
            "{TRADE_BILL_ENDPOINT}?bill_date={}&bill_type={}",
            format_bill_date(self.bill_date),
            encode_component(self.bill_type.as_str())
        );
        if self.gzip {
            path.push_str("&tar_type=GZIP");
        }
        Call::get(TRADE_BILL_ENDPOINT, path)
    }
}

/// A fund-flow bill request: one Beijing day's movements of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FundFlowBillRequest {
    /// The day.
    pub bill_date: NaiveDate,
    /// Which account.
    pub account_type: AccountType,
    /// Ask for the file GZIP-compressed (`tar_type=GZIP`).
    pub gzip: bool,
}

impl FundFlowBillRequest {
    pub(crate) fn call(&self) -> Call {
        let mut path = format!(
            "{FUND_FLOW_BILL_ENDPOINT}?bill_date={}&account_type={}",
            format_bill_date(self.bill_date),
            encode_component(self.account_type.as_str())
        );
        if self.gzip {
            path.push_str("&tar_type=GZIP");
        }
        Call::get(FUND_FLOW_BILL_ENDPOINT, path)
    }
}

/// Where a bill is and what its SHA1 must be.
#[derive(Debug, Clone, PartialEq)]
pub struct BillDownload {
    /// `SHA1`.
    pub hash_type: String,
    /// The file's SHA1, hexadecimal.
    pub hash_value: String,
    /// The file's URL (under the API root; fetched with a signed GET).
    pub download_url: String,
    /// Whether the file is GZIP-compressed: what the request asked for (the answer does not
    /// say).
    pub gzip: bool,
    /// The whole answer.
    pub raw: Value,
}

#[derive(Deserialize)]
struct Wire {
    hash_type: String,
    hash_value: String,
    download_url: String,
}

impl BillDownload {
    /// Reads a bill answer (`context`: which bill call).
    pub(crate) fn read(
        raw: Value,
        context: &'static str,
        gzip: bool,
    ) -> Result<BillDownload, Error> {
        let w: Wire = read(&raw, context)?;
        if w.hash_type != "SHA1" {
            return Err(malformed(
                context,
                format!("`hash_type` is `{}`; only SHA1 is known", w.hash_type),
            ));
        }
        if w.hash_value.len() != 40 || hex::decode(&w.hash_value).is_err() {
            return Err(malformed(context, "`hash_value` is not a hexadecimal SHA1"));
        }
        if w.download_url.is_empty() {
            return Err(malformed(context, "`download_url` is empty"));
        }
        Ok(BillDownload {
            hash_type: w.hash_type,
            hash_value: w.hash_value,
            download_url: w.download_url,
            gzip,
            raw,
        })
    }

    /// Checks a downloaded file against the announced SHA1 and returns the bill's text,
    /// decompressed when it is GZIP.
    pub fn open(&self, file: &[u8]) -> Result<String, Error> {
        let expected = hex::decode(&self.hash_value)
            .map_err(|_| malformed(DOWNLOAD_ENDPOINT, "`hash_value` is not hexadecimal"))?;
        let actual = Sha1::digest(file);
        if !bool::from(actual.as_slice().ct_eq(&expected)) {
            return Err(Error::BillDigest {
                expected: self.hash_value.to_ascii_lowercase(),
                actual: hex::encode(actual),
            });
        }
        let text = if self.gzip {
            if !file.starts_with(&[0x1f, 0x8b]) {
                return Err(malformed(
                    DOWNLOAD_ENDPOINT,
                    "the bill is not GZIP as asked",
                ));
            }
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(file)
                .take(MAX_BILL_BYTES + 1)
                .read_to_end(&mut out)
                .map_err(|e| {
                    malformed(
                        DOWNLOAD_ENDPOINT,
                        format!("the GZIP bill does not decompress: {e}"),
                    )
                })?;
            if out.len() as u64 > MAX_BILL_BYTES {
                return Err(malformed(
                    DOWNLOAD_ENDPOINT,
                    format!("the bill is larger than {MAX_BILL_BYTES} bytes decompressed"),
                ));
            }
            out
        } else {
            file.to_vec()
        };
        String::from_utf8(text).map_err(|_| malformed(DOWNLOAD_ENDPOINT, "the bill is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Write;

    const BILL: &str = "交易时间,公众账号ID,商户号\n`2026-01-01 12:00:00,`wx1,`1900000001\n";

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn download(file: &[u8], gzip: bool) -> BillDownload {
        BillDownload::read(
            json!({
                "hash_type": "SHA1",
                "hash_value": hex::encode(Sha1::digest(file)),
                "download_url": "https://api.mch.weixin.qq.com/v3/billdownload/file?token=6XIv5TUPto7pByrTQKhd6kwvyKLG2uY2wMMR8cNXqaA_Cv_isgaUtBzp4QtiozLO"
            }),
            TRADE_BILL_ENDPOINT,
            gzip,
        )
        .unwrap()
    }

    #[test]
    fn the_calls_carry_their_query() {
        let date = NaiveDate::from_ymd_opt(2026, 1, 9).unwrap();
        let call = TradeBillRequest {
            bill_date: date,
            bill_type: BillType::All,
            gzip: true,
        }
        .call();
        assert_eq!(
            call.path_and_query,
            "/v3/bill/tradebill?bill_date=2026-01-09&bill_type=ALL&tar_type=GZIP"
        );
        let call = FundFlowBillRequest {
            bill_date: date,
            account_type: AccountType::Basic,
            gzip: false,
        }
        .call();
        assert_eq!(
            call.path_and_query,
            "/v3/bill/fundflowbill?bill_date=2026-01-09&account_type=BASIC"
        );
    }

    #[test]
    fn a_bill_is_checked_then_opened() {
        assert_eq!(
            download(BILL.as_bytes(), false)
                .open(BILL.as_bytes())
                .unwrap(),
            BILL
        );
        let compressed = gzip(BILL.as_bytes());
        assert_eq!(download(&compressed, true).open(&compressed).unwrap(), BILL);
        // Upper-case hash values are WeChat's too.
        let mut upper = download(BILL.as_bytes(), false);
        upper.hash_value = upper.hash_value.to_ascii_uppercase();
        assert!(upper.open(BILL.as_bytes()).is_ok());
    }

    #[test]
    fn a_changed_file_fails_its_digest() {
        let announced = download(BILL.as_bytes(), false);
        let mut changed = BILL.as_bytes().to_vec();
        changed[0] ^= 1;
        assert!(matches!(
            announced.open(&changed),
            Err(Error::BillDigest { .. })
        ));
        // A plain file where GZIP was asked for.
        assert!(matches!(
            download(BILL.as_bytes(), true).open(BILL.as_bytes()),
            Err(Error::Malformed { .. })
        ));
        // A truncated GZIP stream with a matching digest.
        let compressed = gzip(BILL.as_bytes());
        let truncated = &compressed[..compressed.len() - 10];
        assert!(matches!(
            download(truncated, true).open(truncated),
            Err(Error::Malformed { .. })
        ));
    }

    #[test]
    fn odd_answers_are_refused() {
        for bad in [
            json!({"hash_type": "MD5", "hash_value": "0".repeat(40), "download_url": "u"}),
            json!({"hash_type": "SHA1", "hash_value": "xyz", "download_url": "u"}),
            json!({"hash_type": "SHA1", "hash_value": "0".repeat(40), "download_url": ""}),
            json!({"hash_type": "SHA1", "hash_value": "0".repeat(40)}),
        ] {
            assert!(
                BillDownload::read(bad.clone(), TRADE_BILL_ENDPOINT, false).is_err(),
                "{bad}"
            );
        }
    }
}
