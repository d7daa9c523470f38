//! The pays element family: `pays.Meta`, `pays.WechatPayType`, `pays.models.PayLogModel`
//! and `pays.services.PaySvc`, over sea-orm.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod db;
