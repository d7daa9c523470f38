//! `getsignkey`: the sandbox's signing key, asked for with the real key. It is sent to
//! [`SANDBOX_SIGN_KEY_PATH`](super::SANDBOX_SIGN_KEY_PATH), in sandbox mode only.

use super::SANDBOX_SIGN_KEY_PATH as PATH;
use crate::fields::Fields;
use crate::{ApiKey, Error, Params, SignType, nonce_str, sign};

/// The request: `mch_id` and a nonce, signed MD5 with the merchant's real API key.
pub(crate) fn request(mch_id: &str, api_key: &ApiKey) -> Params {
    let mut params = Params::new();
    params.insert("mch_id".into(), mch_id.into());
    params.insert("nonce_str".into(), nonce_str());
    let signature = sign(&params, SignType::Md5, api_key);
    params.insert("sign".into(), signature);
    params
}

/// Reads the decoded answer: `return_code` SUCCESS and the `sandbox_signkey`. The answer is
/// not signed, so there is no signature to check.
pub(crate) fn read_answer(answer: &Params) -> Result<ApiKey, Error> {
    let fields = Fields::new(answer, PATH);
    fields.ensure_return_success()?;
    Ok(ApiKey::new(fields.required("sandbox_signkey")?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::test_support::answer;
    use crate::verify;

    #[test]
    fn the_request_is_signed_md5_with_the_real_key() {
        let key = ApiKey::new("192006250b4c09247ec02edce69f6a2d");
        let params = request("10000100", &key);
        assert_eq!(params["mch_id"], "10000100");
        assert_eq!(verify(&params, &key), Ok(SignType::Md5));
    }

    #[test]
    fn reads_the_key_or_the_refusal() {
        let key = read_answer(&answer(&[
            ("return_code", "SUCCESS"),
            ("sandbox_signkey", "sandboxkey"),
        ]))
        .unwrap();
        assert_eq!(key.expose_secret(), "sandboxkey");
        assert!(matches!(
            read_answer(&answer(&[("return_code", "FAIL"), ("return_msg", "no")])),
            Err(Error::Protocol { .. })
        ));
        assert!(matches!(
            read_answer(&answer(&[("return_code", "SUCCESS")])),
            Err(Error::Malformed { .. })
        ));
    }
}
