//! The pays element family: pays.Meta, pays.WechatPayType, PayLogModel and PaySvc over sea-orm.
