//! Driving a simulator that runs elsewhere (another process, `jit sim`) through its `/sim/...`
//! control surface: what a command line's `pay`, `fail`, `fault` and `inspect` subcommands
//! call.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::bill::BillAlteration;
use crate::fault::{ActiveFault, FaultId, FaultRule};
use crate::store::{OutsidePayment, PayTarget, RefundPlan};

/// Why a remote control call failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The simulator could not be reached or answered garbage.
    #[error("cannot reach the simulator at {url}: {source}")]
    Transport {
        /// The URL called.
        url: String,
        /// The HTTP error.
        source: reqwest::Error,
    },
    /// The simulator refused (unknown order, order already paid, invalid fault rule...).
    #[error("the simulator refused {url} ({status}): {message}")]
    Refused {
        /// The URL called.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The simulator's explanation.
        message: String,
    },
}

/// A client for a running simulator's control surface.
#[derive(Debug, Clone)]
pub struct RemoteSim {
    base_url: String,
    http: reqwest::Client,
}

impl RemoteSim {
    /// A client for the simulator at `base_url` (`http://127.0.0.1:8990`).
    pub fn new(base_url: impl Into<String>) -> Self {
        RemoteSim {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
        }
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        url: String,
    ) -> Result<T, RemoteError> {
        let transport = |source| RemoteError::Transport {
            url: url.clone(),
            source,
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        if !status.is_success() {
            let body: Value = response.json().await.unwrap_or(Value::Null);
            return Err(RemoteError::Refused {
                url,
                status: status.as_u16(),
                message: body["error"]
                    .as_str()
                    .unwrap_or("no explanation")
                    .to_string(),
            });
        }
        response.json().await.map_err(transport)
    }

    async fn payer(&self, action: &str, target: &PayTarget) -> Result<Value, RemoteError> {
        let url = format!("{}/sim/{action}", self.base_url);
        let answer: Value = self
            .send(self.http.post(&url).json(target), url.clone())
            .await?;
        Ok(answer["order"].clone())
    }

    /// A merchant's V3 material (see [`SimHandle::v3_material`](crate::SimHandle::v3_material)).
    pub async fn v3_material(&self, mch_id: &str) -> Result<crate::V3Material, RemoteError> {
        let url = format!("{}/sim/v3/material/{mch_id}", self.base_url);
        self.send(self.http.get(&url), url.clone()).await
    }

    /// How V3 answers and notifies are signed now.
    pub async fn v3_mode(&self) -> Result<crate::V3Mode, RemoteError> {
        let url = format!("{}/sim/v3/mode", self.base_url);
        self.send(self.http.get(&url), url.clone()).await
    }

    /// How V3 answers and notifies are signed from now on.
    pub async fn set_v3_mode(&self, mode: crate::V3Mode) -> Result<(), RemoteError> {
        let url = format!("{}/sim/v3/mode", self.base_url);
        let _: Value = self
            .send(self.http.put(&url).json(&mode), url.clone())
            .await?;
        Ok(())
    }

    /// Sends a `WECHATPAY/SIGNTEST/` probe of the V3 order's payment notify.
    pub async fn send_signtest_probe(&self, out_trade_no: &str) -> Result<(), RemoteError> {
        let url = format!("{}/sim/v3/signtest", self.base_url);
        let body = serde_json::json!({ "out_trade_no": out_trade_no });
        let _: Value = self
            .send(self.http.post(&url).json(&body), url.clone())
            .await?;
        Ok(())
    }

    /// Pays the order (JSON of the order after payment).
    pub async fn pay(&self, target: &PayTarget) -> Result<Value, RemoteError> {
        self.payer("pay", target).await
    }

    /// Makes the order's payment fail.
    pub async fn fail_payment(&self, target: &PayTarget) -> Result<Value, RemoteError> {
        self.payer("fail", target).await
    }

    /// Puts a fault in force.
    pub async fn add_fault(&self, rule: &FaultRule) -> Result<FaultId, RemoteError> {
        let url = format!("{}/sim/faults", self.base_url);
        let answer: Value = self
            .send(self.http.post(&url).json(rule), url.clone())
            .await?;
        Ok(FaultId(answer["id"].as_u64().unwrap_or_default()))
    }

    /// The faults in force.
    pub async fn faults(&self) -> Result<Vec<ActiveFault>, RemoteError> {
        let url = format!("{}/sim/faults", self.base_url);
        self.send(self.http.get(&url), url.clone()).await
    }

    /// The inspection log as JSON (see [`Inspection`](crate::Inspection)).
    pub async fn inspect(&self) -> Result<Value, RemoteError> {
        let url = format!("{}/sim/inspect", self.base_url);
        self.send(self.http.get(&url), url.clone()).await
    }

    /// Decides how a refund not yet asked for ends (see [`RefundPlan`]).
    pub async fn plan_refund(&self, plan: &RefundPlan) -> Result<(), RemoteError> {
        let url = format!("{}/sim/refund-plans", self.base_url);
        let _: Value = self
            .send(self.http.post(&url).json(plan), url.clone())
            .await?;
        Ok(())
    }

    /// Settles a refund still PROCESSING as `status` (JSON of the refund after it).
    pub async fn settle_refund(
        &self,
        out_refund_no: &str,
        status: wechatpay_v2::RefundStatus,
    ) -> Result<Value, RemoteError> {
        let url = format!("{}/sim/refunds/settle", self.base_url);
        let body = serde_json::json!({ "out_refund_no": out_refund_no, "status": status });
        let answer: Value = self
            .send(self.http.post(&url).json(&body), url.clone())
            .await?;
        Ok(answer["refund"].clone())
    }

    /// Records a payment the merchant never created (JSON of the paid order).
    pub async fn record_outside_payment(
        &self,
        payment: &OutsidePayment,
    ) -> Result<Value, RemoteError> {
        let url = format!("{}/sim/outside-payments", self.base_url);
        let answer: Value = self
            .send(self.http.post(&url).json(payment), url.clone())
            .await?;
        Ok(answer["order"].clone())
    }

    /// Makes the bills disagree with the orders (see [`BillAlteration`]).
    pub async fn alter_bill(&self, alteration: &BillAlteration) -> Result<(), RemoteError> {
        let url = format!("{}/sim/bill-alterations", self.base_url);
        let _: Value = self
            .send(self.http.post(&url).json(alteration), url.clone())
            .await?;
        Ok(())
    }
}
